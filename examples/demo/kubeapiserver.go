package main

import (
	"path/filepath"

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
