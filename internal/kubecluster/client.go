package kubecluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// AdminTLS trusts the cluster CA and presents the system:masters bootstrap
// certificate.
func AdminTLS(p PKI) (*tls.Config, error) {
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New(p.CAFile + ": no certificate")
	}
	cert, err := tls.LoadX509KeyPair(p.AdminCertFile, p.AdminKeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// AdminClient is an HTTPS client of the API server as the bootstrap admin.
func AdminClient(p PKI, timeout time.Duration) (*http.Client, error) {
	cfg, err := AdminTLS(p)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// Ready returns nil once kube-apiserver at host:port answers /readyz with
// 200: storage, the post-start hooks (the bootstrap RBAC roles among them)
// and the informers are all done. Otherwise it says what it saw.
func Ready(ctx context.Context, client *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("/readyz %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// AdminKubeconfig is the bootstrap identity as a kubeconfig for the API
// server at host:port.
func AdminKubeconfig(addr string, p PKI) ([]byte, error) {
	return yaml.Marshal(clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    "kube-apiserver",
			Cluster: clientcmdv1.Cluster{Server: "https://" + addr, CertificateAuthority: p.CAFile},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{
			Name:     p.AdminUser,
			AuthInfo: clientcmdv1.AuthInfo{ClientCertificate: p.AdminCertFile, ClientKey: p.AdminKeyFile},
		}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    "bootstrap",
			Context: clientcmdv1.Context{Cluster: "kube-apiserver", AuthInfo: p.AdminUser},
		}},
		CurrentContext: "bootstrap",
	})
}

// ProxyKubeconfig is the proxy's own kubeconfig for the API server at
// host:port (what the in-cluster config would carry; serve's --kubeconfig):
// the cluster CA and the bearer token in tokenFile, which client-go re-reads
// as it is refreshed.
func ProxyKubeconfig(addr, caFile, tokenFile string) ([]byte, error) {
	return yaml.Marshal(clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    "kube-apiserver",
			Cluster: clientcmdv1.Cluster{Server: "https://" + addr, CertificateAuthority: caFile},
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

// ProxyManifests (repository-relative) are what a cluster needs before
// kube-iam-authz can act for anyone: its namespace, its service account and
// the RBAC that lets that account impersonate exactly what serve sends.
// Both callers apply them exactly as shipped, so the least-privilege RBAC
// meets a real API server every run.
func ProxyManifests() []string {
	return []string{
		"examples/kubernetes/namespace.yaml",
		"examples/kubernetes/serviceaccount.yaml",
		"examples/kubernetes/rbac.yaml",
	}
}
