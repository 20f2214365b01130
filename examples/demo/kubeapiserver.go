package main

import (
	"path/filepath"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// kubeAPIServerVersion is the release `make kube-apiserver` builds (its
// module under integration/kubeapiserver pins it); the demo checks that
// `kubectl version` reports exactly this server.
const kubeAPIServerVersion = "1.37.2"

// etcdArgs runs a one-member etcd on loopback with a fresh data directory
// (the state directory is wiped at every start).
func etcdArgs(a addrs, dataDir string) []string {
	return kubecluster.Etcd{Name: "demo", DataDir: dataDir, ClientAddr: a.EtcdClient, PeerAddr: a.EtcdPeer}.Args()
}

// kubeAPIServerArgs runs kube-apiserver as kubecluster.APIServer does, with
// the demo's state layout and the repository's audit policy.
func kubeAPIServerArgs(a addrs, repoDir string, l layout, pki kubecluster.PKI) ([]string, error) {
	return kubecluster.APIServer{
		Addr:            a.APIServer,
		EtcdClientAddr:  a.EtcdClient,
		PKI:             pki,
		CertDir:         l.APIServerCert,
		AuditPolicyFile: filepath.Join(repoDir, kubecluster.AuditPolicyFile),
		AuditLogPath:    l.AuditLog,
	}.Args()
}

// buildProxyKubeconfig is serve's --kubeconfig for the SubjectAccessReviews
// of --allow-impersonation: the proxy asks as itself, with the same token
// file it sends upstream (client-go re-reads tokenFile as it is refreshed),
// trusting the cluster CA as a pod's service account would.
func buildProxyKubeconfig(apiServer, caFile, tokenFile string) ([]byte, error) {
	return yaml.Marshal(clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    "kube-apiserver",
			Cluster: clientcmdv1.Cluster{Server: "https://" + apiServer, CertificateAuthority: caFile},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{
			Name:     "kube-iam-authz",
			AuthInfo: clientcmdv1.AuthInfo{TokenFile: tokenFile},
		}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    "kube-iam-authz",
			Context: clientcmdv1.Context{Cluster: "kube-apiserver", AuthInfo: "kube-iam-authz"},
		}},
		CurrentContext: "kube-iam-authz",
	})
}
