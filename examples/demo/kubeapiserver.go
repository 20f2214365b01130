package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// kubeAPIServerVersion is the release `make kube-apiserver` builds (its
// module under integration/kubeapiserver pins it); the demo checks that
// `kubectl version` reports exactly this server.
const kubeAPIServerVersion = "1.37.2"

// The cluster the demo runs: what a pod of examples/kubernetes would find.
const (
	// serviceAccountIssuer is the iss of service-account tokens and, with
	// no --api-audiences, their audience: the proxy's TokenRequest token is
	// bound to this API server and no other service accepts it.
	serviceAccountIssuer = "https://kubernetes.default.svc"
	// serviceClusterIPRange is required by kube-apiserver even with no
	// Services in use (it allocates the "kubernetes" Service's IP from it).
	serviceClusterIPRange = "10.96.0.0/16"
)

// auditPolicyFile records every request at Metadata level; docker-compose.yml
// mounts the same file.
const auditPolicyFile = "examples/demo/audit-policy.yaml"

// etcdArgs runs a one-member etcd on loopback with a fresh data directory
// (the state directory is wiped at every start).
func etcdArgs(a addrs, dataDir string) []string {
	client, peer := "http://"+a.EtcdClient, "http://"+a.EtcdPeer
	return []string{
		"--name", "demo",
		"--data-dir", dataDir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "demo=" + peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
		// kube-apiserver's watch cache learns that the revision moved on
		// only from progress notifications; a watch that must start at the
		// current revision (kubectl get -w) waits up to 3 s for one and then
		// fails with "Too large resource version". etcd 3.4's default
		// interval is 10 minutes (the e2e fixture sets the same).
		"--experimental-watch-progress-notify-interval", "500ms",
	}
}

// kubeAPIServerArgs runs kube-apiserver as a kubeadm control plane would,
// on loopback: client certificates and service-account tokens as
// authenticators, Node and RBAC as authorizers (so a request the mapping
// lets through is still judged by RBAC), the audit log on.
func kubeAPIServerArgs(a addrs, repoDir string, l layout, pki clusterPKI) ([]string, error) {
	host, port, err := net.SplitHostPort(a.APIServer)
	if err != nil {
		return nil, err
	}
	return []string{
		"--etcd-servers", "http://" + a.EtcdClient,
		"--bind-address", host,
		"--secure-port", port,
		"--advertise-address", host,
		"--tls-cert-file", pki.ServingCertFile,
		"--tls-private-key-file", pki.ServingKeyFile,
		"--client-ca-file", pki.CAFile,
		"--authorization-mode", "Node,RBAC",
		"--service-account-issuer", serviceAccountIssuer,
		"--service-account-key-file", pki.SAPubFile,
		"--service-account-signing-key-file", pki.SAKeyFile,
		"--service-cluster-ip-range", serviceClusterIPRange,
		"--audit-policy-file", filepath.Join(repoDir, auditPolicyFile),
		"--audit-log-path", l.AuditLog,
		"--cert-dir", l.APIServerCert,
		// A loopback advertise address cannot go into the "kubernetes"
		// Endpoints (validation refuses loopback); there is no in-cluster
		// client to need it.
		"--endpoint-reconciler-type", "none",
		"--profiling=false",
	}, nil
}

// bootstrapTLS is the demo's own client for the API server: the cluster CA
// and the system:masters certificate.
func bootstrapTLS(pki clusterPKI) (*tls.Config, error) {
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New(pki.CAFile + ": no certificate")
	}
	cert, err := tls.LoadX509KeyPair(pki.AdminCertFile, pki.AdminKeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// bootstrapHTTPClient probes /readyz with the bootstrap certificate.
func bootstrapHTTPClient(pki clusterPKI) (*http.Client, error) {
	cfg, err := bootstrapTLS(pki)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// readyz is kube-apiserver's readiness: storage, post-start hooks (the
// bootstrap RBAC roles among them) and informers all done.
func readyz(client *http.Client, addr string) func(context.Context) error {
	return httpOK(client, "https://"+addr+"/readyz")
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

// buildAdminKubeconfig is the bootstrap identity as a kubeconfig, for the
// demo's `kubectl apply` and for a reader who wants to look at the cluster
// without the proxy.
func buildAdminKubeconfig(apiServer string, pki clusterPKI) ([]byte, error) {
	return yaml.Marshal(clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    "kube-apiserver",
			Cluster: clientcmdv1.Cluster{Server: "https://" + apiServer, CertificateAuthority: pki.CAFile},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{
			Name:     bootstrapUser,
			AuthInfo: clientcmdv1.AuthInfo{ClientCertificate: pki.AdminCertFile, ClientKey: pki.AdminKeyFile},
		}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    "bootstrap",
			Context: clientcmdv1.Context{Cluster: "kube-apiserver", AuthInfo: bootstrapUser},
		}},
		CurrentContext: "bootstrap",
	})
}
