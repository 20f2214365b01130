package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// syncBuffer is an io.Writer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
	logs               *syncBuffer
	cancel             context.CancelFunc
	exit               chan int
	client             authv3.AuthorizationClient
	health             healthpb.HealthClient
}

func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{logs: &syncBuffer{}, cancel: cancel, exit: make(chan int, 1)}
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

func waitUntil(t *testing.T, cond func() bool, what string, logs *syncBuffer) {
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

func TestServeStartupFailures(t *testing.T) {
	good := writeTemp(t, "aws-auth.yaml", "mapUsers: []\n")
	tests := map[string]struct {
		args []string
		want string
	}{
		"missing required flags":                {args: nil, want: "--cluster-id is required"},
		"missing mapping file":                  {args: []string{"--cluster-id", "c", "--mapping-file", "/nonexistent/aws-auth.yaml"}, want: "aws-auth.yaml"},
		"invalid mapping file":                  {args: []string{"--cluster-id", "c", "--mapping-file", writeTemp(t, "bad.yaml", "mapRoles: |\n  - rolearn: nope\n   - x\n")}, want: "invalid aws-auth mapping"},
		"configmap without a usable kubeconfig": {args: []string{"--cluster-id", "c", "--mapping-configmap", "kube-system/aws-auth", "--kubeconfig", "/nonexistent/kubeconfig"}, want: "mapping configmap kube-system/aws-auth: kubernetes client (--kubeconfig or in-cluster)"},
		"invalid entry with --mapping-strict":   {args: []string{"--cluster-id", "c", "--mapping-strict", "--mapping-file", writeTemp(t, "entry.yaml", "mapRoles:\n  - rolearn: nope\n")}, want: "mapRoles[0].rolearn: invalid ARN"},
		"missing upstream token":                {args: []string{"--cluster-id", "c", "--mapping-file", good, "--upstream-token-file", "/nonexistent/token"}, want: "upstream token"},
		"http STS endpoint by name":             {args: []string{"--cluster-id", "c", "--mapping-file", good, "--sts-endpoint", "http://sts.example.com"}, want: "loopback"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			logs := &syncBuffer{}
			code := Run(ctx, append([]string{"serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...),
				Streams{In: strings.NewReader(""), Out: io.Discard, Err: logs})
			if code == 0 {
				t.Fatal("serve succeeded")
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, logs.String())
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
