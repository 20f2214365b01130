package kubecluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeTestPKI(t *testing.T) PKI {
	t.Helper()
	p, err := WritePKI(t.TempDir(), PKIOptions{CAName: "test CA", AdminUser: "test-admin", Now: time.Now(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWritePKI: the serving certificate is valid for the name
// envoy/sidecar.yaml verifies and for loopback, and only as a server; the
// bootstrap certificate is a system:masters client; the service-account key
// is ECDSA (ES256 tokens) with its public half beside it; the keys are
// private.
func TestWritePKI(t *testing.T) {
	p := writeTestPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, p.CAFile))

	serving := readCert(t, p.ServingCertFile)
	for _, name := range []string{"kubernetes.default.svc", "127.0.0.1", "localhost"} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("the serving certificate is also a client certificate")
	}
	if got := serving.NotAfter.Sub(serving.NotBefore); got != time.Hour+time.Minute {
		t.Errorf("serving certificate valid for %s, want the lifetime plus a minute of skew", got)
	}

	admin := readCert(t, p.AdminCertFile)
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("bootstrap certificate as a client: %v", err)
	}
	if admin.Subject.CommonName != "test-admin" || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("bootstrap subject %v, want CN=test-admin O=system:masters", admin.Subject)
	}

	b, err := os.ReadFile(p.SAKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("sa.key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("sa.key: %v", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("sa.key is %T, want ECDSA (ES256 tokens)", k)
	}
	b, err = os.ReadFile(p.SAPubFile)
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ = pem.Decode(b); blk == nil || blk.Type != "PUBLIC KEY" {
		t.Fatal("sa.pub: no PUBLIC KEY block")
	}
	if pub, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil || !priv.PublicKey.Equal(pub) {
		t.Errorf("sa.pub is not sa.key's public key (%v)", err)
	}
	for _, f := range []string{p.ServingKeyFile, p.AdminKeyFile, p.SAKeyFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}

	if _, err := WritePKI(t.TempDir(), PKIOptions{CAName: "x", AdminUser: "y"}); err == nil {
		t.Error("a PKI without a lifetime was made")
	}
}

// flagMap reads "--k v" and "--k=v" pairs.
func flagMap(args []string) map[string]string {
	got := map[string]string{}
	for i := 0; i < len(args); i++ {
		k, v, ok := strings.Cut(args[i], "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			v = args[i+1]
			i++
		}
		got[k] = v
	}
	return got
}

// TestAPIServerArgs pins what makes the upstream a faithful cluster: RBAC,
// the audit log, service-account tokens, the PKI's certificates.
func TestAPIServerArgs(t *testing.T) {
	p := PKI{CAFile: "/p/ca.crt", ServingCertFile: "/p/s.crt", ServingKeyFile: "/p/s.key", SAKeyFile: "/p/sa.key", SAPubFile: "/p/sa.pub"}
	a := APIServer{Addr: "127.0.0.1:16443", EtcdClientAddr: "127.0.0.1:12379", PKI: p, CertDir: "/p/dir", AuditPolicyFile: "/repo/policy.yaml", AuditLogPath: "/state/audit.log"}
	args, err := a.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"--etcd-servers":                     "http://127.0.0.1:12379",
		"--bind-address":                     "127.0.0.1",
		"--advertise-address":                "127.0.0.1",
		"--secure-port":                      "16443",
		"--authorization-mode":               "Node,RBAC",
		"--client-ca-file":                   "/p/ca.crt",
		"--tls-cert-file":                    "/p/s.crt",
		"--tls-private-key-file":             "/p/s.key",
		"--service-account-key-file":         "/p/sa.pub",
		"--service-account-signing-key-file": "/p/sa.key",
		"--service-account-issuer":           ServiceAccountIssuer,
		"--service-cluster-ip-range":         ServiceClusterIPRange,
		"--audit-policy-file":                "/repo/policy.yaml",
		"--audit-log-path":                   "/state/audit.log",
		"--audit-log-format":                 "json",
		"--cert-dir":                         "/p/dir",
		"--endpoint-reconciler-type":         "none",
		"--profiling":                        "false",
	}
	got := flagMap(args)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// No other authenticator: no static tokens, no anonymous default left
	// to chance by a flag we did not mean.
	for _, k := range []string{"--token-auth-file", "--authorization-mode=AlwaysAllow"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is set", k)
		}
	}

	for name, bad := range map[string]APIServer{
		"no port":      {Addr: "no-port", EtcdClientAddr: a.EtcdClientAddr, PKI: p, CertDir: "/d", AuditPolicyFile: "/p", AuditLogPath: "/l"},
		"no etcd":      {Addr: a.Addr, PKI: p, CertDir: "/d", AuditPolicyFile: "/p", AuditLogPath: "/l"},
		"no audit log": {Addr: a.Addr, EtcdClientAddr: a.EtcdClientAddr, PKI: p, CertDir: "/d", AuditPolicyFile: "/p"},
	} {
		if _, err := bad.Args(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEtcdArgs(t *testing.T) {
	got := flagMap(Etcd{Name: "kia", DataDir: "/d", ClientAddr: "127.0.0.1:1", PeerAddr: "127.0.0.1:2"}.Args())
	want := map[string]string{
		"--name":                        "kia",
		"--data-dir":                    "/d",
		"--listen-client-urls":          "http://127.0.0.1:1",
		"--advertise-client-urls":       "http://127.0.0.1:1",
		"--listen-peer-urls":            "http://127.0.0.1:2",
		"--initial-advertise-peer-urls": "http://127.0.0.1:2",
		"--initial-cluster":             "kia=http://127.0.0.1:2",
		"--initial-cluster-state":       "new",
		"--experimental-watch-progress-notify-interval": "500ms",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestAdminClientAndReady: the admin client presents the bootstrap
// certificate to a server that requires one from the cluster CA, and Ready
// reports a 200 /readyz as ready and anything else with what it saw.
func TestAdminClientAndReady(t *testing.T) {
	p := writeTestPKI(t)
	var ready bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "test-admin" {
			http.Error(w, "no admin", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/readyz" || !ready {
			http.Error(w, "[-]poststarthook/rbac/bootstrap-roles failed", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	clusterCA := x509.NewCertPool()
	clusterCA.AddCert(readCert(t, p.CAFile))
	srv.TLS = &tls.Config{ClientCAs: clusterCA, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	// The test server presents its own certificate; trust it for this test.
	client, err := AdminClient(p, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(srv.Certificate())
	addr := strings.TrimPrefix(srv.URL, "https://")
	if err := Ready(context.Background(), client, addr); err == nil || !strings.Contains(err.Error(), "/readyz 500: [-]poststarthook/rbac/bootstrap-roles failed") {
		t.Errorf("not ready: %v", err)
	}
	ready = true
	if err := Ready(context.Background(), client, addr); err != nil {
		t.Errorf("ready: %v", err)
	}
}

func TestAdminKubeconfig(t *testing.T) {
	p := writeTestPKI(t)
	b, err := AdminKubeconfig("127.0.0.1:6443", p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg clientcmdv1.Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || cfg.Clusters[0].Cluster.CertificateAuthority != p.CAFile {
		t.Errorf("clusters %+v", cfg.Clusters)
	}
	if len(cfg.AuthInfos) != 1 || cfg.AuthInfos[0].Name != "test-admin" || cfg.AuthInfos[0].AuthInfo.ClientCertificate != p.AdminCertFile || cfg.AuthInfos[0].AuthInfo.ClientKey != p.AdminKeyFile || cfg.AuthInfos[0].AuthInfo.Token != "" {
		t.Errorf("users %+v", cfg.AuthInfos)
	}
	if cfg.CurrentContext != "bootstrap" {
		t.Errorf("current context %q", cfg.CurrentContext)
	}
}

// TestRepositoryFiles: the files the callers resolve against the repository
// exist.
func TestRepositoryFiles(t *testing.T) {
	for _, f := range append(ProxyManifests(), AuditPolicyFile) {
		if _, err := os.Stat(filepath.Join("..", "..", f)); err != nil {
			t.Error(err)
		}
	}
}

// TestProxyKubeconfig: the proxy's kubeconfig carries the cluster CA and a
// token file (re-read by client-go as it rotates), never a token itself.
func TestProxyKubeconfig(t *testing.T) {
	b, err := ProxyKubeconfig("127.0.0.1:6443", "/p/ca.crt", "/run/token")
	if err != nil {
		t.Fatal(err)
	}
	var cfg clientcmdv1.Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || cfg.Clusters[0].Cluster.CertificateAuthority != "/p/ca.crt" || cfg.Clusters[0].Cluster.InsecureSkipTLSVerify {
		t.Errorf("clusters %+v", cfg.Clusters)
	}
	if len(cfg.AuthInfos) != 1 || cfg.AuthInfos[0].AuthInfo.TokenFile != "/run/token" || cfg.AuthInfos[0].AuthInfo.Token != "" || cfg.AuthInfos[0].AuthInfo.ClientCertificate != "" {
		t.Errorf("users %+v", cfg.AuthInfos)
	}
	if len(cfg.Contexts) != 1 || cfg.CurrentContext != cfg.Contexts[0].Name {
		t.Errorf("contexts %+v, current %q", cfg.Contexts, cfg.CurrentContext)
	}
}
