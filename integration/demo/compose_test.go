//go:build integration

package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestComposeKubeAPIServer runs docker-compose.yml's kube-apiserver command
// line with the real kube-apiserver v1.37.2 binary (the image's), since no
// container engine runs here: only container paths become the files the
// compose file mounts, the etcd address a local etcd's, and the port a free
// loopback one. It proves what a compose-go validation cannot: that the
// flags are valid for this release, that the self-signed certificate in
// --cert-dir names what Envoy and kubectl check, that the signing key in
// it serves service-account tokens, and that the static proxy token, with
// examples/kubernetes/rbac.yaml applied as shipped, may impersonate.
func TestComposeKubeAPIServer(t *testing.T) {
	bins := binDir(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatal(err)
	}
	api := p.Services["kube-apiserver"]

	// Container paths → the files compose would mount; the named volume
	// (the certificate directory) → a fresh temp dir.
	mounts := map[string]string{}
	for _, v := range api.Volumes {
		src := v.Source
		if v.Type != types.VolumeTypeBind {
			src = t.TempDir()
		}
		mounts[v.Target] = src
	}
	etcdAddr, peerAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	harness.StartProcess(t, "etcd", harness.EtcdPath,
		"--data-dir", t.TempDir(), "--listen-client-urls", "http://"+etcdAddr, "--advertise-client-urls", "http://"+etcdAddr,
		"--listen-peer-urls", "http://"+peerAddr, "--initial-advertise-peer-urls", "http://"+peerAddr,
		"--initial-cluster", "default=http://"+peerAddr)

	// 127.0.0.2 (loopback) as the bind address, so that 127.0.0.1 in the
	// certificate can only come from the compose file's --advertise-address.
	_, port, _ := net.SplitHostPort(harness.FreeAddr(t))
	var args []string
	var certDir string
	for _, a := range api.Command {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "--etcd-servers":
			value = "http://" + etcdAddr
		case "--secure-port":
			value = port
		}
		for target, src := range mounts {
			if value == target || strings.HasPrefix(value, target+"/") {
				value = src + strings.TrimPrefix(value, target)
			}
		}
		if name == "--cert-dir" {
			certDir = value
		}
		args = append(args, name+"="+value)
	}
	if certDir == "" {
		t.Fatal("compose's kube-apiserver has no --cert-dir")
	}
	args = append(args, "--bind-address=127.0.0.2")
	harness.StartProcess(t, "kube-apiserver", filepath.Join(bins, "kube-apiserver"), args...)

	server := "https://127.0.0.2:" + port
	caFile := filepath.Join(certDir, "apiserver.crt")
	deadline := time.Now().Add(readyBudget)
	for {
		err := readyz(server, caFile)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver with compose's flags not ready after %s: %v", readyBudget, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	t.Run("the self-signed certificate names what Envoy and kubectl check", func(t *testing.T) {
		b, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		blk, rest := pem.Decode(b)
		leaf, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(leaf.DNSNames, "kubernetes.default.svc") {
			t.Errorf("certificate DNS names %v lack kubernetes.default.svc (envoy/sidecar.yaml's sni and SAN)", leaf.DNSNames)
		}
		if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
			t.Errorf("certificate IPs %v lack 127.0.0.1 (kubectl on the host)", leaf.IPAddresses)
		}
		// The file ends with its CA: it is what compose copies out as the
		// CA for kubectl and into Envoy as ca.crt.
		if blk, _ := pem.Decode(rest); blk == nil {
			t.Errorf("%s holds only the leaf, not its CA", caFile)
		}
	})

	tokens := map[string]string{}
	csv, err := os.ReadFile(filepath.Join(root, "examples", "compose", "tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(csv)), "\n") {
		f := strings.SplitN(line, ",", 3)
		tokens[f[1]] = f[0]
	}
	proxyToken, err := os.ReadFile(filepath.Join(root, "examples", "compose", "proxy-token"))
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(token string, args ...string) (string, error) {
		cmd := exec.Command("/usr/bin/kubectl", append([]string{"--server", server, "--certificate-authority", caFile, "--token", token}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// The instructions' one kubectl apply, as the bootstrap admin.
	applyArgs := []string{"apply"}
	for _, f := range []string{"examples/kubernetes/namespace.yaml", "examples/kubernetes/serviceaccount.yaml", "examples/kubernetes/rbac.yaml", "examples/demo/rbac.yaml"} {
		applyArgs = append(applyArgs, "-f", filepath.Join(root, f))
	}
	if out, err := kubectl(tokens["kube-iam-authz-demo-bootstrap"], applyArgs...); err != nil {
		t.Fatalf("kubectl apply as the bootstrap admin: %v\n%s", err, out)
	}

	proxy := strings.TrimSpace(string(proxyToken))
	if out, err := kubectl(proxy, "auth", "whoami"); err != nil || !strings.Contains(out, "system:serviceaccount:kube-iam-authz:kube-iam-authz") {
		t.Errorf("the proxy token is not the proxy's service account: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"impersonate", "users"}, "yes"},
		{[]string{"impersonate", "groups"}, "yes"},
		{[]string{"impersonate", "serviceaccounts"}, "no"},
		{[]string{"list", "secrets", "-A"}, "no"},
	} {
		out, _ := kubectl(proxy, append([]string{"auth", "can-i"}, tc.args...)...)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("proxy: kubectl auth can-i %s = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	// The developer's demo RBAC, through impersonation by the proxy token,
	// as Envoy would send it.
	out, err := kubectl(proxy, "--as", "developer:alice", "--as-group", "developers", "--as-uid", "aws-iam-authenticator:111122223333:AROAEXAMPLEDEVELOPER1", "get", "pods", "-n", "dev")
	if err != nil || !strings.Contains(out, "No resources found in dev namespace.") {
		t.Errorf("the proxy impersonating developer:alice in developers could not list pods in dev: %v\n%s", err, out)
	}
}

// readyz asks kube-apiserver's readiness, trusting only caFile.
func readyz(server, caFile string) error {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return fmt.Errorf("%s: no certificate", caFile)
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(server + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %d", resp.StatusCode)
	}
	return nil
}
