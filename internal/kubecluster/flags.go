package kubecluster

import (
	"errors"
	"fmt"
	"net"
)

// The cluster both callers run: what a pod of examples/kubernetes would find.
const (
	// ServiceAccountIssuer is the iss of service-account tokens and, with no
	// --api-audiences, their audience: the proxy's TokenRequest token is
	// bound to this API server and no other service accepts it.
	ServiceAccountIssuer = "https://kubernetes.default.svc"
	// ServiceClusterIPRange is required by kube-apiserver even with no
	// Services in use (it allocates the "kubernetes" Service's IP from it).
	ServiceClusterIPRange = "10.96.0.0/16"
	// AuditPolicyFile (repository-relative) records every request at
	// Metadata level: who (the proxy's service account), as whom
	// (impersonatedUser), what and the answer, never a body.
	// docker-compose.yml mounts the same file.
	AuditPolicyFile = "examples/demo/audit-policy.yaml"
)

// Etcd is a one-member etcd on loopback with a fresh data directory.
type Etcd struct {
	// Name is the member name.
	Name string
	// DataDir must be empty or absent: the cluster starts new.
	DataDir string
	// ClientAddr and PeerAddr are host:port.
	ClientAddr, PeerAddr string
}

// Args are etcd's flags.
func (e Etcd) Args() []string {
	client, peer := "http://"+e.ClientAddr, "http://"+e.PeerAddr
	return []string{
		"--name", e.Name,
		"--data-dir", e.DataDir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", e.Name + "=" + peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
		// kube-apiserver's watch cache learns that the revision moved on
		// (without a change to the watched resource) only from progress
		// notifications; a watch that must start at the current revision
		// (kubectl get -w) waits up to 3 s for one and then fails with "Too
		// large resource version". etcd 3.4's default interval is 10 minutes.
		"--experimental-watch-progress-notify-interval", "500ms",
	}
}

// APIServer is kube-apiserver run as a kubeadm control plane would, on
// loopback.
type APIServer struct {
	// Addr is host:port of the secure port; the host is also the bind and
	// advertise address.
	Addr string
	// EtcdClientAddr is etcd's client host:port.
	EtcdClientAddr string
	PKI            PKI
	// CertDir is kube-apiserver's --cert-dir (nothing is written there while
	// the serving certificate is given).
	CertDir string
	// AuditPolicyFile is the policy (AuditPolicyFile, resolved against the
	// repository); AuditLogPath the JSON-lines log.
	AuditPolicyFile, AuditLogPath string
}

// Args are kube-apiserver's flags: client certificates and service-account
// tokens as authenticators, Node and RBAC as authorizers (so a request the
// mapping lets through is still judged by RBAC), the audit log on.
func (a APIServer) Args() ([]string, error) {
	host, port, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return nil, fmt.Errorf("kubecluster: API server address: %w", err)
	}
	if a.EtcdClientAddr == "" || a.PKI.CAFile == "" || a.AuditPolicyFile == "" || a.AuditLogPath == "" || a.CertDir == "" {
		return nil, errors.New("kubecluster: APIServer needs the etcd address, the PKI, the audit policy and log, and a cert dir")
	}
	return []string{
		"--etcd-servers", "http://" + a.EtcdClientAddr,
		"--bind-address", host,
		"--secure-port", port,
		"--advertise-address", host,
		"--tls-cert-file", a.PKI.ServingCertFile,
		"--tls-private-key-file", a.PKI.ServingKeyFile,
		"--client-ca-file", a.PKI.CAFile,
		"--authorization-mode", "Node,RBAC",
		"--service-account-issuer", ServiceAccountIssuer,
		"--service-account-key-file", a.PKI.SAPubFile,
		"--service-account-signing-key-file", a.PKI.SAKeyFile,
		"--service-cluster-ip-range", ServiceClusterIPRange,
		"--audit-policy-file", a.AuditPolicyFile,
		"--audit-log-path", a.AuditLogPath,
		// One JSON event per line (the default, spelt out: tests parse it),
		// never rotated.
		"--audit-log-format", "json",
		"--audit-log-maxsize", "0",
		"--cert-dir", a.CertDir,
		// A loopback advertise address cannot go into the "kubernetes"
		// Endpoints (validation refuses loopback); there is no in-cluster
		// client to need it.
		"--endpoint-reconciler-type", "none",
		"--profiling=false",
	}, nil
}
