package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil"
)

// logField returns the string field of the first log line with msg.
func logField(logs, msg, field string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != msg {
			continue
		}
		v, _ := line[field].(string)
		return v
	}
	return ""
}

type served struct {
	grpcAddr, httpAddr string
	logs               *testutil.SyncBuffer
	cancel             context.CancelFunc
	exit               chan int
	client             authv3.AuthorizationClient
	health             healthpb.HealthClient
}

func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{logs: &testutil.SyncBuffer{}, cancel: cancel, exit: make(chan int, 1)}
	go func() {
		s.exit <- Run(ctx, append([]string{"serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, args...),
			Streams{In: strings.NewReader(""), Out: io.Discard, Err: s.logs})
	}()
	waitUntil(t, func() bool {
		s.grpcAddr = logField(s.logs.String(), "gRPC server listening", "addr")
		s.httpAddr = logField(s.logs.String(), "HTTP server listening", "addr")
		return s.grpcAddr != "" && s.httpAddr != ""
	}, "listeners", s.logs)
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.client = authv3.NewAuthorizationClient(conn)
	s.health = healthpb.NewHealthClient(conn)
	t.Cleanup(func() {
		cancel()
		conn.Close()
		select {
		case <-s.exit:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return s
}

func waitUntil(t *testing.T, cond func() bool, what string, logs *testutil.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkReq(tok string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{"authorization": "Bearer " + tok},
		}},
		ContextExtensions: ext,
	}}
}

func headerValue(resp *authv3.CheckResponse, name string) string {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func groupSlots(resp *authv3.CheckResponse) []string {
	var out []string
	for i := 0; ; i++ {
		v, ok := resp.GetDynamicMetadata().GetFields()["impersonate_group_"+string(rune('0'+i))]
		if !ok || i > 9 {
			return out
		}
		out = append(out, v.GetStringValue())
	}
}

// replaceFile swaps a file's content atomically (write then rename), like
// an editor or a config management tool.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestServeEndToEnd(t *testing.T) {
	bob := stsfake.IAMUser("111122223333", "bob", stsfake.Credentials{AccessKeyID: "AKIABOBBOBBOBBOB0001", SecretAccessKey: "s1"})
	fake, err := stsfake.New(stsfake.Options{Principals: []stsfake.Principal{bob}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := fake.Start(stsfake.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()

	dir := t.TempDir()
	devMapping := filepath.Join(dir, "dev.yaml")
	prodMapping := filepath.Join(dir, "prod.yaml")
	tokenFile := filepath.Join(dir, "sa-token")
	replaceFile(t, devMapping, "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: bob\n    groups: [devs]\n")
	replaceFile(t, prodMapping, "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: bob-prod\n    groups: [prod-readers]\n")
	replaceFile(t, tokenFile, "proxy-sa-token\n")
	prodToken := filepath.Join(dir, "prod-sa-token")
	replaceFile(t, prodToken, "prod-sa-token-value\n")
	config := writeTemp(t, "config.yaml", "clusters:\n  - name: prod\n    clusterID: prod-cluster\n    mappingFile: "+prodMapping+"\n    upstreamTokenFile: "+prodToken+"\n")

	s := startServe(t, "--config", config, "--cluster-id", "dev-cluster", "--mapping-file", devMapping,
		"--sts-endpoint", run.URL, "--upstream-token-file", tokenFile, "--sts-timeout", "2s")

	waitUntil(t, func() bool {
		resp, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, "SERVING", s.logs)
	if code, _ := httpGet(t, "http://"+s.httpAddr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}

	sign := func(clusterID string) string {
		tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: bob.Credentials, ClusterID: clusterID, SignedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	check := func(tok string, ext map[string]string) *authv3.CheckResponse {
		resp, err := s.client.Check(context.Background(), checkReq(tok, ext))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	dev := sign("dev-cluster")
	resp := check(dev, nil)
	if headerValue(resp, "impersonate-user") != "bob" || headerValue(resp, "authorization") != "Bearer proxy-sa-token" || strings.Join(groupSlots(resp), ",") != "devs" {
		t.Fatalf("dev answer: %v", resp)
	}

	// Another cluster, selected by the route's context_extensions.
	prod := sign("prod-cluster")
	resp = check(prod, map[string]string{"cluster_id": "prod-cluster"})
	if headerValue(resp, "impersonate-user") != "bob-prod" || strings.Join(groupSlots(resp), ",") != "prod-readers" || headerValue(resp, "authorization") != "Bearer prod-sa-token-value" {
		t.Fatalf("prod answer: %v", resp)
	}
	// A dev token on the prod route fails STS's signature check.
	resp = check(dev, map[string]string{"cluster_id": "prod-cluster"})
	if resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("dev token on the prod route: %v", resp)
	}
	if ids := fake.ClusterIDs(); strings.Join(ids, ",") != "dev-cluster,prod-cluster,prod-cluster" {
		t.Errorf("STS saw cluster ids %v", ids)
	}

	// A mapping change under the running server changes the next answer.
	replaceFile(t, devMapping, "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: robert\n    groups: [devs, admins]\n")
	waitUntil(t, func() bool { return headerValue(check(dev, nil), "impersonate-user") == "robert" }, "the new mapping", s.logs)
	if got := strings.Join(groupSlots(check(dev, nil)), ","); got != "devs,admins" {
		t.Errorf("groups after the change = %q", got)
	}
	// The upstream token rotates too.
	replaceFile(t, tokenFile, "rotated-sa-token-value\n")
	waitUntil(t, func() bool { return headerValue(check(dev, nil), "authorization") == "Bearer rotated-sa-token-value" }, "the rotated upstream token", s.logs)
	if got := fake.Stats().Total; got != 3 {
		t.Errorf("STS calls = %d, want 3 (every later Check of the dev token is a cache hit)", got)
	}

	code, metrics := httpGet(t, "http://"+s.httpAddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, family := range []string{
		"kube_iam_authz_checks_total", "kube_iam_authz_check_duration_seconds", "kube_iam_authz_sts_requests_total",
		"kube_iam_authz_sts_request_duration_seconds", "kube_iam_authz_cache_requests_total", "kube_iam_authz_cache_entries",
		"kube_iam_authz_mapping_reloads_total", "kube_iam_authz_mapping_last_success_timestamp_seconds",
		"kube_iam_authz_upstream_token_reads_total", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(metrics, "\n"+family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	for _, secret := range []string{"k8s-aws-v1.", "X-Amz-Signature", "proxy-sa-token", "rotated-sa-token-value", "prod-sa-token-value"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}

	s.cancel()
	select {
	case code := <-s.exit:
		if code != 0 {
			t.Errorf("exit code %d after SIGTERM-equivalent cancel\n%s", code, s.logs.String())
		}
		s.exit <- code
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeStartupFailures: each start-up error is one line that names the
// flag (or config key) and the fix, with every path once: an operator reads
// it in a CrashLoopBackOff log.
func TestServeStartupFailures(t *testing.T) {
	good := writeTemp(t, "aws-auth.yaml", "mapUsers: []\n")
	bad := writeTemp(t, "bad.yaml", "mapRoles: |\n  - rolearn: nope\n   - x\n")
	badEntry := writeTemp(t, "entry.yaml", "mapRoles:\n  - rolearn: nope\n")
	notPEM := writeTemp(t, "ca.pem", "not a certificate\n")
	empty := writeTemp(t, "token", "\n")
	ca := harness.NewCA(t)
	a, b := ca.Issue(t, "a", "127.0.0.1"), ca.Issue(t, "b", "127.0.0.1")
	cfg := writeTemp(t, "serve.yaml", "clusters:\n  - name: prod\n    clusterID: prod-id\n    mappingFile: /nonexistent/prod.yaml\n")
	tests := map[string]struct {
		args     []string
		wantLine string // the whole error line
		path     string // appears exactly once, if set
	}{
		"missing required flags": {
			args:     nil,
			wantLine: "--cluster-id is required\n--mapping-file or --mapping-configmap is required",
		},
		"missing mapping file": {
			args:     []string{"--cluster-id", "c", "--mapping-file", "/nonexistent/aws-auth.yaml"},
			wantLine: "--mapping-file /nonexistent/aws-auth.yaml does not exist: mount the aws-auth ConfigMap there (as a directory, not a subPath) or fix the path",
			path:     "/nonexistent/aws-auth.yaml",
		},
		"invalid mapping file": {
			args:     []string{"--cluster-id", "c", "--mapping-file", bad},
			wantLine: "--mapping-file " + bad + ` is not a valid aws-auth mapping (1 problem, first: line 2: mapRoles: YAML syntax error: did not find expected '-' indicator): fix the file; kube-iam-authz mapping check --mapping-file ` + bad + " lists every one",
		},
		"invalid entry with --mapping-strict": {
			args:     []string{"--cluster-id", "c", "--mapping-strict", "--mapping-file", badEntry},
			wantLine: "--mapping-file " + badEntry + ` is not a valid aws-auth mapping (2 problems, first: line 2: mapRoles[0].rolearn: invalid ARN: "nope": arn: invalid prefix): fix the file; kube-iam-authz mapping check --mapping-file ` + badEntry + " lists every one",
		},
		"missing mapping file of a config cluster": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--config", cfg},
			wantLine: "--config clusters[0] (prod) mappingFile /nonexistent/prod.yaml does not exist: mount the aws-auth ConfigMap there (as a directory, not a subPath) or fix the path",
			path:     "/nonexistent/prod.yaml",
		},
		"missing upstream token": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--upstream-token-file", "/nonexistent/token"},
			wantLine: "--upstream-token-file /nonexistent/token does not exist: mount the projected service-account token there or fix the path",
			path:     "/nonexistent/token",
		},
		"empty upstream token": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--upstream-token-file", empty},
			wantLine: "--upstream-token-file " + empty + ": is empty",
			path:     empty,
		},
		"cache TTL above a token's life": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--cache-ttl", "1h"},
			wantLine: "--cache-ttl 1h0m0s: at most 15m0s, the longest a token lives: lower it",
		},
		"negative cache TTL above the cache TTL": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--cache-ttl", "1m", "--cache-negative-ttl", "2m"},
			wantLine: "--cache-negative-ttl 2m0s: must not exceed --cache-ttl 1m0s: lower it",
		},
		"STS CA file missing": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--sts-ca-file", "/nonexistent/ca.pem"},
			wantLine: "--sts-ca-file /nonexistent/ca.pem: no such file or directory: give a readable PEM CA bundle, or drop the flag to trust only the system roots",
			path:     "/nonexistent/ca.pem",
		},
		"STS CA file without a certificate": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--sts-ca-file", notPEM},
			wantLine: "--sts-ca-file " + notPEM + " holds no PEM certificate: give a PEM CA bundle",
			path:     notPEM,
		},
		"gRPC key pair that does not match": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--grpc-tls-cert", a.CertFile, "--grpc-tls-key", b.KeyFile},
			wantLine: "--grpc-tls-cert " + a.CertFile + " / --grpc-tls-key " + b.KeyFile + ": tls: private key does not match public key: give a matching PEM certificate and key",
			path:     a.CertFile,
		},
		"http STS endpoint by name": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--sts-endpoint", "http://sts.example.com"},
			wantLine: "--sts-endpoint/--sts-rate-limit/--sts-rate-burst: endpoint may use http only to a loopback IP address",
		},
		"impersonation without a usable kubeconfig": {
			args:     []string{"--cluster-id", "c", "--mapping-file", good, "--allow-impersonation", "--kubeconfig", "/nonexistent/kubeconfig"},
			wantLine: "--kubeconfig /nonexistent/kubeconfig (for --allow-impersonation): no such file or directory: give a readable kubeconfig, or drop --kubeconfig to use the in-cluster API server",
			path:     "/nonexistent/kubeconfig",
		},
		"configmap without a usable kubeconfig": {
			args:     []string{"--cluster-id", "c", "--mapping-configmap", "kube-system/aws-auth", "--kubeconfig", "/nonexistent/kubeconfig"},
			wantLine: "--mapping-configmap kube-system/aws-auth: --kubeconfig /nonexistent/kubeconfig: no such file or directory: give a readable kubeconfig, or drop --kubeconfig to use the in-cluster API server",
			path:     "/nonexistent/kubeconfig",
		},
		"configmap outside a pod without a kubeconfig": {
			args:     []string{"--cluster-id", "c", "--mapping-configmap", "kube-system/aws-auth"},
			wantLine: "--mapping-configmap kube-system/aws-auth: no Kubernetes API client: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined: run in a pod or give --kubeconfig",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			logs := &testutil.SyncBuffer{}
			code := Run(ctx, append([]string{"serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...),
				Streams{In: strings.NewReader(""), Out: io.Discard, Err: logs})
			if code == 0 {
				t.Fatal("serve succeeded")
			}
			// The error is the text after the last "kube-iam-authz: " (JSON
			// log lines may precede it).
			out := logs.String()
			i := strings.LastIndex(out, "kube-iam-authz: ")
			if i < 0 {
				t.Fatalf("no error line in:\n%s", out)
			}
			got := strings.TrimSuffix(out[i+len("kube-iam-authz: "):], "\n")
			if got != tc.wantLine {
				t.Errorf("error:\n got %s\nwant %s", got, tc.wantLine)
			}
			if tc.path != "" && strings.Count(got, tc.path) != 1 {
				t.Errorf("error names %s %d times, want once", tc.path, strings.Count(got, tc.path))
			}
		})
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
