//go:build integration

package e2e

// The production Check server (authz/check with the real parser, STS client,
// cache and mapping store, against the STS stand-in) behind the real Envoy
// 1.40 running the reviewed sidecar config: what reaches the API server, and
// what a refused client sees.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type constBearer string

func (c constBearer) BearerToken() string { return string(c) }

func TestCheckServerThroughEnvoy(t *testing.T) {
	const clusterID = "wire-cluster"
	alice := stsfake.AssumedRole("111122223333", "Dev", "alice",
		stsfake.Credentials{AccessKeyID: "ASIAALICEALICEAL0002", SecretAccessKey: "alice-secret", SessionToken: "alice-session"})
	fake, err := stsfake.New(stsfake.Options{Principals: []stsfake.Principal{alice}})
	if err != nil {
		t.Fatal(err)
	}
	stsRun, err := fake.Start(stsfake.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stsRun.Close() })

	mappingFile := filepath.Join(t.TempDir(), "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(`mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: "dev:{{SessionName}}"
    groups: [devs, viewers, "team:platform"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.InfoLevel))
	reg := prometheus.NewRegistry()
	parser, err := token.NewParser(token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := sts.New(sts.Options{Endpoint: stsRun.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := cache.New(verify.New(parser, client), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := mapping.NewStore(mapping.StoreOptions{Path: mappingFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Load(); err != nil {
		t.Fatal(err)
	}
	mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: store})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := check.New(check.Options{
		Verifier:   verifier,
		Clusters:   []check.Cluster{{Name: "default", ID: clusterID, Mapper: mapper, Ready: store.Ready}},
		Upstream:   constBearer("proxy-sa-token"),
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	authzAddr := harness.FreeAddr(t)
	l, err := net.Listen("tcp", authzAddr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)

	ca := harness.NewCA(t)
	up := startUpstream(t, ca.Issue(t, "apiserver", apiServerName).TLS)
	cfg, ports := harness.RenderEnvoy(t, "../../envoy/sidecar.yaml", harness.RenderOptions{
		AuthzAddr:  authzAddr,
		APIServers: map[string]string{"apiserver": up.Addr},
		CA:         ca,
		ServerCert: ca.Issue(t, "envoy", "localhost", "127.0.0.1"),
	})
	envoy := harness.StartEnvoy(t, cfg)
	tlsConfig := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	s := &wireStack{
		envoy: envoy, ports: ports, upstreams: map[string]*rawUpstream{"apiserver": up},
		h1: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: tlsConfig,
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
		}},
		h2: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}},
	}
	sign := func(cluster string) string {
		tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: alice.Credentials, ClusterID: cluster, SignedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(clusterID)
	principal, _, _ := strings.Cut(alice.UserID, ":")

	for _, proto := range []string{"h1", "h2"} {
		t.Run("allowed over "+proto, func(t *testing.T) {
			client := s.h1
			if proto == "h2" {
				client = s.h2
			}
			c := "allowed-" + proto
			resp := s.do(t, client, "", http.MethodGet, "/api/v1/pods", c, http.Header{"Authorization": {"Bearer " + good}})
			if resp.status != http.StatusOK || resp.body != "upstream-ok" {
				t.Fatalf("status %d %q", resp.status, resp.body)
			}
			got := up.requests(c)
			if len(got) != 1 {
				t.Fatalf("upstream saw %d requests", len(got))
			}
			r := got[0]
			want := map[string][]string{
				"impersonate-user":               {"dev:alice"},
				"impersonate-group":              {"devs", "viewers", "team:platform"},
				"impersonate-uid":                {"aws-iam-authenticator:111122223333:" + principal},
				"impersonate-extra-arn":          {alice.ARN},
				"impersonate-extra-canonicalarn": {"arn:aws:iam::111122223333:role/Dev"},
				"impersonate-extra-sessionname":  {"alice"},
				"impersonate-extra-accesskeyid":  {alice.AccessKeyID},
				"impersonate-extra-principalid":  {principal},
				"authorization":                  {"Bearer proxy-sa-token"},
			}
			for name, values := range want {
				if lines := r.lines(name); !slices.Equal(lines, values) {
					t.Errorf("%s lines = %q, want %q", name, lines, values)
				}
			}
			for _, name := range r.names() {
				if _, ok := want[name]; strings.HasPrefix(name, "impersonate-") && !ok {
					t.Errorf("unexpected upstream header %q", name)
				}
			}
			if strings.Contains(r.Head, "k8s-aws-v1.") {
				t.Error("the client's token reached the upstream")
			}
		})
	}

	denials := map[string]struct {
		headers    http.Header
		wantStatus int
		wantReason string
		wantHeader [2]string
	}{
		"smuggled impersonate-group": {
			headers:    http.Header{"Authorization": {"Bearer " + good}, "Impersonate-Group": {"system:masters"}},
			wantStatus: http.StatusForbidden, wantReason: "Forbidden",
		},
		"smuggled impersonate-uid": {
			headers:    http.Header{"Authorization": {"Bearer " + good}, "Impersonate-Uid": {"x"}},
			wantStatus: http.StatusForbidden, wantReason: "Forbidden",
		},
		"two authorization lines": {
			headers:    http.Header{"Authorization": {"Bearer " + good, "Bearer " + good}},
			wantStatus: http.StatusUnauthorized, wantReason: "Unauthorized", wantHeader: [2]string{"Www-Authenticate", "Bearer"},
		},
		"no token": {
			headers:    http.Header{},
			wantStatus: http.StatusUnauthorized, wantReason: "Unauthorized", wantHeader: [2]string{"Www-Authenticate", "Bearer"},
		},
		"token for another cluster": {
			headers:    http.Header{"Authorization": {"Bearer " + sign("other-cluster")}},
			wantStatus: http.StatusUnauthorized, wantReason: "Unauthorized", wantHeader: [2]string{"Www-Authenticate", "Bearer"},
		},
	}
	for name, tc := range denials {
		t.Run(name, func(t *testing.T) {
			resp := s.do(t, s.h1, "", http.MethodGet, "/api", name, tc.headers)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d %q, want %d", resp.status, resp.body, tc.wantStatus)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if tc.wantHeader[0] != "" && resp.header.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("%s = %q, want %q", tc.wantHeader[0], resp.header.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			var st struct {
				Kind, APIVersion, Status, Reason, Message string
				Code                                      int
			}
			if err := json.Unmarshal([]byte(resp.body), &st); err != nil {
				t.Fatalf("body is not JSON: %q", resp.body)
			}
			if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != "Failure" || st.Reason != tc.wantReason || st.Code != tc.wantStatus || st.Message == "" {
				t.Errorf("Status body %+v", st)
			}
			if got := up.requests(name); len(got) != 0 {
				t.Errorf("a refused request reached the upstream: %v", got)
			}
		})
	}

	// Envoy's access log carries our decision ids (dynamic metadata).
	entries := s.accessLog(t, func(m map[string]any) bool { id, _ := m["decision_id"].(string); return id != "" && id != "-" })
	ours := logs.String()
	matched := 0
	for _, e := range entries {
		if id, _ := e["decision_id"].(string); id != "" && strings.Contains(ours, `"decision":"`+id+`"`) {
			matched++
		}
	}
	if matched == 0 {
		t.Errorf("no Envoy access log decision_id matches a server decision line\nenvoy: %v\nserver: %s", entries, ours)
	}
	for _, secret := range []string{"k8s-aws-v1.", "X-Amz-Signature", "proxy-sa-token", "alice-session"} {
		if strings.Contains(ours, secret) || strings.Contains(envoy.Stdout(), secret) || strings.Contains(envoy.Stderr(), secret) {
			t.Errorf("a log contains %q", secret)
		}
	}
}
