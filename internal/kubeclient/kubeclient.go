// Package kubeclient builds the one kind of Kubernetes API client serve
// uses (SubjectAccessReviews for --allow-impersonation, the informer of
// --mapping-configmap): from --kubeconfig or the pod's in-cluster config,
// with TLS verification that cannot be turned off and no redirects.
package kubeclient

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent names the proxy in the API server's audit log.
const UserAgent = "kube-iam-authz"

// InClusterCAFile is where a pod finds the cluster CA (the automounted
// service account volume, or the kube-root-ca.crt ConfigMap mounted there).
const InClusterCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// ErrInsecure: the config turns TLS verification off.
var ErrInsecure = errors.New("the API server config disables TLS verification (insecure-skip-tls-verify); refused")

// Config is the API server config from a kubeconfig file or, when
// kubeconfig is empty, from the pod: rest.InClusterConfig, or, with a token
// file, the same API server address and CA with that token (the example
// deployment mounts no service account token, only the projected proxy
// token, so the proxy asks as itself; client-go re-reads the file as the
// kubelet rotates it).
func Config(kubeconfig, tokenFile string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if tokenFile == "" {
		return rest.InClusterConfig()
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, rest.ErrNotInCluster
	}
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		BearerTokenFile: tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: InClusterCAFile},
	}, nil
}

// NewClientset builds a clientset for cfg. A config with TLS verification
// off is refused, and redirects are never followed: an answer (an access
// review, the aws-auth ConfigMap) must come from the API server itself, and
// a redirect would carry the proxy's credential elsewhere.
func NewClientset(cfg *rest.Config) (*kubernetes.Clientset, error) {
	if cfg.Insecure {
		return nil, ErrInsecure
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = UserAgent
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}
