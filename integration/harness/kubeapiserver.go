package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// The proxy's service account, as examples/kubernetes names it (serviceaccount.yaml,
// rbac.yaml): the fixture applies those manifests, so the real API server grants the
// proxy exactly what a deployment from the examples grants.
const (
	ProxyNamespace      = "kube-iam-authz"
	ProxyServiceAccount = "kube-iam-authz"
	// ProxyUsername is who the proxy's TokenRequest token authenticates as.
	ProxyUsername = "system:serviceaccount:" + ProxyNamespace + ":" + ProxyServiceAccount
)

// kubeAPIServerSANs are the serving certificate's names: the in-cluster names a
// reviewed Envoy config pins with sni and a SAN matcher (kubernetes.default.svc),
// and the loopback address the fixture's own clients use.
func kubeAPIServerSANs() []string { return append(kubecluster.DNSNames(), "127.0.0.1") }

// kubeAPIServerReadyTimeout bounds etcd + kube-apiserver start-up (about 20–30 s on
// an idle 2-core machine; a loaded one takes longer).
const kubeAPIServerReadyTimeout = 3 * time.Minute

// kubeAdminUser is the fixture's system:masters client certificate user.
const kubeAdminUser = "kia-fixture-admin"

// EtcdPath is Debian's etcd-server binary (`make debs`).
const EtcdPath = "/usr/bin/etcd"

// KubeAPIServer is a real kube-apiserver ($KIA_BIN/kube-apiserver, `make
// kube-apiserver`) with its own etcd on loopback ports and a fresh data dir, run
// with internal/kubecluster's flags and PKI as the demo runs it: authorization
// Node,RBAC, an audit log of every request, service-account signing keys, and the
// examples' namespace, service account and RBAC applied. Each chain
// on it gets its own TokenRequest token for the proxy (NewProxyToken).
//
// Starting one costs tens of seconds, so a test package shares one per process
// (SharedKubeAPIServer); tests keep apart by namespaces and user names.
type KubeAPIServer struct {
	Etcd *Process
	*Process
	// URL is https://127.0.0.1:PORT; Addr its host:port (Envoy's cluster endpoint).
	URL  string
	Addr string
	// CAFile is the CA of the serving certificate (valid for kubeAPIServerSANs).
	CAFile string
	// AdminKubeconfig authenticates as a system:masters user (a client
	// certificate), for the fixture and for tests that set things up.
	AdminKubeconfig string
	// AuditLogPath is the JSON-lines audit log.
	AuditLogPath string
	// StartupTime is how long etcd + kube-apiserver took to become ready.
	StartupTime time.Duration

	dir     string
	kubectl string
	env     []string
	client  *http.Client

	stopOnce sync.Once
}

// SharedKubeAPIServer starts one KubeAPIServer for a whole test process, on first
// use, and stops it when Stop is called (from TestMain, after m.Run).
type SharedKubeAPIServer struct {
	once sync.Once
	k    *KubeAPIServer
	err  error
}

// Get returns the shared instance, starting it on first use. A start-up failure
// fails every test that asks (it is never a skip).
func (s *SharedKubeAPIServer) Get(t testing.TB) *KubeAPIServer {
	t.Helper()
	s.once.Do(func() {
		s.k, s.err = startKubeAPIServer()
		if s.err == nil {
			t.Logf("harness: etcd + kube-apiserver ready in %s", s.k.StartupTime.Round(100*time.Millisecond))
		}
	})
	if s.err != nil {
		t.Fatalf("harness: kube-apiserver: %v", s.err)
	}
	k := s.k
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver stderr (tail):\n%s", tail(k.StderrPath))
		}
	})
	return k
}

// Stop stops the shared instance, if it was started, and removes its files.
func (s *SharedKubeAPIServer) Stop() {
	if s.k != nil {
		s.k.Stop()
	}
}

func startKubeAPIServer() (_ *KubeAPIServer, err error) {
	begin := time.Now()
	bin, err := binPath(BinKubeAPIServer)
	if err != nil {
		return nil, err
	}
	etcd, err := exec.LookPath(EtcdPath)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w; run `make debs` (Debian etcd-server)", err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return nil, fmt.Errorf("kubectl: %w", err)
	}
	dir, err := os.MkdirTemp("", "kia-kube-apiserver-")
	if err != nil {
		return nil, err
	}
	k := &KubeAPIServer{dir: dir, kubectl: kubectl}
	defer func() {
		if err != nil {
			k.Stop()
		}
	}()
	for _, d := range []string{"etcd", "pki", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	k.env = append(os.Environ(), "HOME="+filepath.Join(dir, "home"))

	// etcd: client and peer URLs on loopback, a fresh data dir.
	clientAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	peerAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	etcdFlags := kubecluster.Etcd{Name: "kia", DataDir: filepath.Join(dir, "etcd"), ClientAddr: clientAddr, PeerAddr: peerAddr}.Args()
	k.Etcd, err = startProcess(dir, "etcd", etcd, etcdFlags...)
	if err != nil {
		return nil, err
	}

	// PKI made at start: the cluster CA, the serving certificate, the
	// service-account signing key, the admin's client certificate.
	pki, err := kubecluster.WritePKI(filepath.Join(dir, "pki"), kubecluster.PKIOptions{
		CAName: "kube-iam-authz e2e cluster CA", AdminUser: kubeAdminUser, Now: time.Now(), Lifetime: certLifetime,
	})
	if err != nil {
		return nil, err
	}
	k.CAFile = pki.CAFile
	policy, err := repoFile(kubecluster.AuditPolicyFile)
	if err != nil {
		return nil, err
	}
	k.AuditLogPath = filepath.Join(dir, "audit.log")

	k.Addr, err = freeAddr()
	if err != nil {
		return nil, err
	}
	k.URL = "https://" + k.Addr
	apiFlags, err := kubecluster.APIServer{
		Addr: k.Addr, EtcdClientAddr: clientAddr, PKI: pki,
		CertDir: filepath.Join(dir, "pki"), AuditPolicyFile: policy, AuditLogPath: k.AuditLogPath,
	}.Args()
	if err != nil {
		return nil, err
	}
	k.Process, err = startProcess(dir, "kube-apiserver", bin, apiFlags...)
	if err != nil {
		return nil, err
	}
	if k.client, err = kubecluster.AdminClient(pki, 10*time.Second); err != nil {
		return nil, err
	}
	err = k.waitFor(kubeAPIServerReadyTimeout-time.Since(begin), func() error {
		if exited, werr := k.Etcd.Exited(); exited {
			return fmt.Errorf("etcd exited (%v); stderr:\n%s", werr, tail(k.Etcd.StderrPath))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return kubecluster.Ready(ctx, k.client, k.Addr)
	})
	if err != nil {
		return nil, err
	}
	kubeconfig, err := kubecluster.AdminKubeconfig(k.Addr, pki)
	if err != nil {
		return nil, err
	}
	k.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(k.AdminKubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	// The proxy's namespace, service account and RBAC, exactly as the examples ship
	// them.
	for _, m := range kubecluster.ProxyManifests() {
		path, err := repoFile(m)
		if err != nil {
			return nil, err
		}
		if res := k.kubectlRun("apply", "-f", path); res.ExitCode != 0 {
			return nil, fmt.Errorf("kubectl apply -f %s: exit %d: %s", path, res.ExitCode, res.Stderr)
		}
	}
	k.StartupTime = time.Since(begin)
	return k, nil
}

// RequestToken asks the TokenRequest API for a token of service account ns/name
// valid for ttl, as the kubelet does for a projected volume, and returns it with its
// expiry.
func (k *KubeAPIServer) RequestToken(ns, name string, ttl time.Duration) (string, time.Time, error) {
	secs := int64(ttl / time.Second)
	req := authnv1.TokenRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
		Spec:     authnv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", time.Time{}, err
	}
	code, out, err := k.do(http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+name+"/token", body)
	if err != nil {
		return "", time.Time{}, err
	}
	if code != http.StatusCreated {
		return "", time.Time{}, fmt.Errorf("TokenRequest for %s/%s: %d: %s", ns, name, code, out)
	}
	var resp authnv1.TokenRequest
	if err := json.Unmarshal(out, &resp); err != nil {
		return "", time.Time{}, fmt.Errorf("TokenRequest for %s/%s: %w", ns, name, err)
	}
	if resp.Status.Token == "" {
		return "", time.Time{}, errors.New("TokenRequest answered no token")
	}
	return resp.Status.Token, resp.Status.ExpirationTimestamp.Time, nil
}

// do sends one request as the fixture's admin and returns the status and body.
func (k *KubeAPIServer) do(method, path string, body []byte) (int, []byte, error) {
	return k.doAs("", method, path, body)
}

// doAs is do acting as user (the admin impersonates it; "" is the admin itself).
func (k *KubeAPIServer) doAs(user, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, k.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if user != "" {
		req.Header.Set("Impersonate-User", user)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, out, err
}

// Do sends one request as the fixture's admin (a system:masters user) and returns
// the status and body, failing the test if the request could not be made.
func (k *KubeAPIServer) Do(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	code, out, err := k.do(method, path, body)
	if err != nil {
		t.Fatalf("harness: kube-apiserver %s %s: %v", method, path, err)
	}
	return code, out
}

// DoAs is Do acting as user: the admin impersonates it (for a service account the
// API server adds its groups), as `kubectl --as` does.
func (k *KubeAPIServer) DoAs(t testing.TB, user, method, path string, body []byte) (int, []byte) {
	t.Helper()
	code, out, err := k.doAs(user, method, path, body)
	if err != nil {
		t.Fatalf("harness: kube-apiserver %s %s as %s: %v", method, path, user, err)
	}
	return code, out
}

// Kubectl runs kubectl with the admin kubeconfig. A non-zero exit is a result.
func (k *KubeAPIServer) Kubectl(t testing.TB, args ...string) KubectlResult {
	t.Helper()
	return runKubectl(t, k.kubectl, k.AdminKubeconfig, k.env, args...)
}

// Apply applies manifest (YAML or JSON, one or more documents) as the admin and
// fails the test unless kubectl succeeds.
func (k *KubeAPIServer) Apply(t testing.TB, manifest string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "manifest-*.yaml")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if _, err := f.WriteString(manifest); err != nil {
		t.Fatalf("harness: %v", err)
	}
	_ = f.Close()
	if res := k.Kubectl(t, "apply", "-f", f.Name()); res.ExitCode != 0 {
		t.Fatalf("harness: kubectl apply: exit %d: %s", res.ExitCode, res.Stderr)
	}
}

// kubectlRun runs kubectl as the admin outside any test (start-up).
func (k *KubeAPIServer) kubectlRun(args ...string) KubectlResult {
	full := append([]string{"--kubeconfig", k.AdminKubeconfig, "--request-timeout", "30s"}, args...)
	cmd := exec.Command(k.kubectl, full...)
	cmd.Env = k.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := KubectlResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	case err != nil:
		res.ExitCode, res.Stderr = -1, err.Error()
	}
	return res
}

// ProxyKubeconfig writes a kubeconfig for the proxy's own API calls (what the
// in-cluster config would carry): this server, its CA, and the bearer token in
// tokenFile, which client-go re-reads as it rotates.
func (k *KubeAPIServer) ProxyKubeconfig(t testing.TB, tokenFile string) string {
	t.Helper()
	data, err := kubecluster.ProxyKubeconfig(k.Addr, k.CAFile, tokenFile)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	path := filepath.Join(t.TempDir(), "proxy.kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return path
}

// Stop stops kube-apiserver and etcd and removes the files.
func (k *KubeAPIServer) Stop() {
	k.stopOnce.Do(func() {
		if k.Process != nil {
			k.Process.Stop()
		}
		if k.Etcd != nil {
			k.Etcd.Stop()
		}
		_ = os.RemoveAll(k.dir)
	})
}

// String names the server in test logs.
func (k *KubeAPIServer) String() string { return "kube-apiserver " + k.URL }
