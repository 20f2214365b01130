package harness

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFreeAddrIsBindableLoopback(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr = %q (%v), want 127.0.0.1:port", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("bind %s: %v", addr, err)
	}
	_ = l.Close()
}

func TestCAIssuesVerifiableServerCerts(t *testing.T) {
	ca := NewCA(t)
	cert := ca.Issue(t, "server", "kubernetes.default.svc", "127.0.0.1")
	leaf, err := x509.ParseCertificate(cert.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		name    string
		wantErr bool
	}{
		"DNS SAN":   {name: "kubernetes.default.svc"},
		"IP SAN":    {name: "127.0.0.1"},
		"other DNS": {name: "evil.example", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: tc.name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Verify(%s) = %v, wantErr %v", tc.name, err, tc.wantErr)
			}
		})
	}
	// The files round-trip through a TLS handshake.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "kubernetes.default.svc"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_ = c.Close()
}

func TestProcessStopAndEarlyExit(t *testing.T) {
	p := StartProcess(t, "sleeper", "/bin/sh", "-c", "echo started; echo oops >&2; exec sleep 60")
	err := p.waitFor(5*time.Second, func() error {
		if strings.Contains(p.Stdout(), "started") {
			return nil
		}
		return errNotReady
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop()
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process still running after Stop")
	}
	if time.Since(start) > stopGrace {
		t.Fatalf("Stop took %s: SIGTERM was not enough?", time.Since(start))
	}
	if !strings.Contains(p.Stderr(), "oops") {
		t.Fatalf("stderr not captured: %q", p.Stderr())
	}

	dead := StartProcess(t, "dies", "/bin/sh", "-c", "echo bad config >&2; exit 3")
	err = dead.waitFor(5*time.Second, func() error { return errNotReady })
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("waitFor on a dying process = %v, want an early-exit error with its stderr", err)
	}
}

func TestProjectedDirUpdatesLikeTheKubelet(t *testing.T) {
	p := NewProjectedDir(t, map[string][]byte{"token": []byte("one")})
	first, err := os.Readlink(filepath.Join(p.Dir, "..data"))
	if err != nil {
		t.Fatalf("..data is not a symlink: %v", err)
	}
	if target, err := os.Readlink(p.Path("token")); err != nil || target != filepath.Join("..data", "token") {
		t.Fatalf("token links to %q (%v), want ..data/token", target, err)
	}

	p.Update(t, map[string][]byte{"token": []byte("two")})
	if b, err := os.ReadFile(p.Path("token")); err != nil || string(b) != "two" {
		t.Fatalf("after Update, token = %q (%v), want two", b, err)
	}
	second, _ := os.Readlink(filepath.Join(p.Dir, "..data"))
	if second == first {
		t.Fatalf("..data still points to %s after Update", first)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, first)); !os.IsNotExist(err) {
		t.Errorf("old generation %s still present (%v)", first, err)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "..data_tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary link left behind (%v)", err)
	}

	for name, files := range map[string]map[string][]byte{
		"path":   {"a/b": nil},
		"hidden": {".x": nil},
		"empty":  {"": nil},
	} {
		if err := p.update(files); err == nil {
			t.Errorf("update with a %s name: no error", name)
		}
	}
}

func TestUpstreamTLSOfReviewedConfigs(t *testing.T) {
	tests := map[string]struct {
		config string
		want   map[string]UpstreamTLS
	}{
		"sidecar": {config: "envoy/sidecar.yaml", want: map[string]UpstreamTLS{
			"apiserver": {SNI: "kubernetes.default.svc", CAFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
		}},
		"multi-cluster": {config: "envoy/multi-cluster.yaml", want: map[string]UpstreamTLS{
			"apiserver-a": {SNI: "prod-a.k8s.example.com", CAFile: "/etc/kube-iam-authz/upstream/prod-a-ca.crt"},
			"apiserver-b": {SNI: "prod-b.k8s.example.com", CAFile: "/etc/kube-iam-authz/upstream/prod-b-ca.crt"},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := UpstreamTLSOf(t, RepoFile(t, tc.config)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("UpstreamTLSOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClientEnvIsolatesCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIADEVELOPERSOWNKEY")
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("KUBECONFIG", "/home/dev/.kube/config")
	home := newClientHome(t)
	env := clientEnv(home)
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s set twice", k)
		}
		got[k] = v
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "KUBECONFIG"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s=%q leaked into the client environment", k, v)
		}
	}
	want := map[string]string{
		"HOME":                        home,
		"AWS_CONFIG_FILE":             filepath.Join(home, ".aws", "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, ".aws", "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
