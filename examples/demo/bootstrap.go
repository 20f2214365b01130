package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// awsAuthFile is the example aws-auth ConfigMap (kube-system/aws-auth), applied
// to the cluster as EKS holds it; serve watches it there (--mapping-configmap).
const (
	awsAuthFile = "examples/aws-auth.yaml"
	awsAuthRef  = "kube-system/aws-auth"
)

// demoRBACFile gives the mapped developer something to do: list pods in
// namespace dev, and nothing cluster-wide.
const demoRBACFile = "examples/demo/rbac.yaml"

// proxyTokenLifetime is what the Deployment's projected token asks for
// (examples/kubernetes/deployment.yaml: expirationSeconds 3600).
const proxyTokenLifetime = time.Hour

// proxyServiceAccount reads the proxy's service account from the shipped
// manifest, so the token is requested for the account the RBAC binds.
func proxyServiceAccount(repoDir string) (namespace, name string, err error) {
	path := filepath.Join(repoDir, "examples", "kubernetes", "serviceaccount.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	var sa corev1.ServiceAccount
	if err := yaml.UnmarshalStrict(b, &sa); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if sa.Kind != "ServiceAccount" || sa.Namespace == "" || sa.Name == "" {
		return "", "", fmt.Errorf("%s: want a ServiceAccount with a namespace and a name", path)
	}
	return sa.Namespace, sa.Name, nil
}

// tokenRequester asks the API server for a fresh token of one service
// account (the TokenRequest API, as the kubelet does for a projected
// volume).
type tokenRequester func(ctx context.Context) (token string, expires time.Time, err error)

// newTokenRequester returns a tokenRequester for namespace/name that
// authenticates with the bootstrap certificate.
func newTokenRequester(apiServer string, pki kubecluster.PKI, namespace, name string) (tokenRequester, error) {
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:    "https://" + apiServer,
		Timeout: 10 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: pki.CAFile, CertFile: pki.AdminCertFile, KeyFile: pki.AdminKeyFile,
		},
	})
	if err != nil {
		return nil, err
	}
	seconds := int64(proxyTokenLifetime / time.Second)
	return func(ctx context.Context) (string, time.Time, error) {
		tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			// No audiences: the API server's own (--api-audiences, which
			// defaults to the issuer), like the Deployment's projected token.
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", time.Time{}, fmt.Errorf("TokenRequest for %s/%s: %w", namespace, name, err)
		}
		if tr.Status.Token == "" {
			return "", time.Time{}, fmt.Errorf("TokenRequest for %s/%s: empty token", namespace, name)
		}
		return tr.Status.Token, tr.Status.ExpirationTimestamp.Time, nil
	}, nil
}

// writeTokenFile replaces path atomically (write and rename in the same
// directory), as the kubelet swaps a projected volume: serve, which re-reads
// the file when it changes, never sees half a token.
func writeTokenFile(path, token string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".proxy-token-*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(token)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// tokenRefresher keeps the proxy's token file fresh while the demo stays
// up: it requests a new token at 80% of the current one's lifetime (what
// the kubelet does for projected tokens) and retries a failure after
// retryAfter, until ctx ends.
type tokenRefresher struct {
	request    tokenRequester
	write      func(token string) error
	now        func() time.Time
	after      func(time.Duration) <-chan time.Time
	retryAfter time.Duration
	// report is told about every refresh and every failure.
	report func(expires time.Time, err error)
}

// refreshAt is when a token issued at issued and expiring at expires is
// replaced.
func refreshAt(issued, expires time.Time) time.Time {
	return issued.Add(expires.Sub(issued) * 8 / 10)
}

// run refreshes until ctx ends; issued and expires describe the token
// already in the file.
func (r *tokenRefresher) run(ctx context.Context, issued, expires time.Time) {
	wait := refreshAt(issued, expires).Sub(r.now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.after(max(wait, 0)):
		}
		now := r.now()
		token, exp, err := r.request(ctx)
		if ctx.Err() != nil {
			// The demo is stopping: the chain is going away with the file.
			return
		}
		if err == nil {
			err = r.write(token)
		}
		r.report(exp, err)
		if err != nil {
			wait = r.retryAfter
			continue
		}
		wait = refreshAt(now, exp).Sub(r.now())
	}
}
