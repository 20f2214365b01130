//go:build integration

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestEnvoyStatsListener: each reviewed config's stats listener serves Envoy's
// Prometheus metrics and nothing else of the admin interface, on the wire against the
// real Envoy. Every other admin path and every other method is 404, a path that
// only starts with /stats/prometheus or climbs out of it is 404, and Envoy is still
// serving afterwards (no /quitquitquit got through).
func TestEnvoyStatsListener(t *testing.T) {
	t.Parallel()
	for _, cfg := range []struct {
		file     string
		clusters []harness.ChainCluster
	}{
		{"envoy/sidecar.yaml", harness.SidecarClusters()},
		{"envoy/multi-cluster.yaml", harness.MultiClusters()},
	} {
		t.Run(filepath.Base(cfg.file), func(t *testing.T) {
			t.Parallel()
			testEnvoyStatsListener(t, harness.StartChain(t, harness.ChainOptions{EnvoyConfig: cfg.file, Clusters: cfg.clusters}), cfg.clusters[0].Name)
		})
	}
}

func testEnvoyStatsListener(t *testing.T, c *harness.Chain, cluster string) {
	addr := c.EnvoyStats["stats"]
	if addr == "" {
		t.Fatalf("the Envoy config has no stats listener (have %v)", c.EnvoyStats)
	}
	user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, cluster)

	// Some traffic first, so that ext_authz counters have moved.
	if r := c.KubectlOn(t, cluster, user, "auth", "whoami"); r.ExitCode != 0 {
		t.Fatalf("kubectl auth whoami: %+v", r)
	}

	tests := map[string]struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		"prometheus":                 {method: "GET", path: "/stats/prometheus", wantStatus: 200, wantBody: "envoy_http_ext_authz_ok{"},
		"prometheus with parameters": {method: "GET", path: "/stats/prometheus?usedonly", wantStatus: 200, wantBody: "envoy_http_ext_authz_ok{"},
		"quitquitquit":               {method: "POST", path: "/quitquitquit", wantStatus: 404},
		"quitquitquit by GET":        {method: "GET", path: "/quitquitquit", wantStatus: 404},
		"runtime_modify":             {method: "POST", path: "/runtime_modify?x=1", wantStatus: 404},
		"config_dump":                {method: "GET", path: "/config_dump", wantStatus: 404},
		"plain stats":                {method: "GET", path: "/stats", wantStatus: 404},
		"prometheus by POST":         {method: "POST", path: "/stats/prometheus", wantStatus: 404},
		"longer path":                {method: "GET", path: "/stats/prometheusx", wantStatus: 404},
		"dot segments":               {method: "GET", path: "/stats/prometheus/../../quitquitquit", wantStatus: 404},
		"encoded dot segments":       {method: "GET", path: "/stats/prometheus/%2e%2e/%2e%2e/quitquitquit", wantStatus: 404},
		"healthcheck fail":           {method: "POST", path: "/healthcheck/fail", wantStatus: 404},
	}
	names := make([]string, 0, len(tests))
	for name := range tests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			status, body := rawHTTP(t, addr, tc.method, tc.path)
			if status != tc.wantStatus {
				t.Fatalf("%s %s = %d, want %d\n%.300s", tc.method, tc.path, status, tc.wantStatus, body)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Errorf("%s %s: body lacks %q", tc.method, tc.path, tc.wantBody)
			}
		})
	}
	// Envoy is still up and still serves kubectl.
	if exited, err := c.Envoy.Exited(); exited {
		t.Fatalf("Envoy exited: %v", err)
	}
	if r := c.KubectlOn(t, cluster, user, "auth", "whoami"); r.ExitCode != 0 {
		t.Fatalf("kubectl after the probes: %+v", r)
	}

	// The certificate-expiry alert's input tracks the certificates Envoy loaded:
	// the harness issues 24-hour certificates, and Envoy reports 0 or 1 whole days
	// for them (both were seen here, depending on when the gauge is read; not
	// investigated further). With no certificate it would be 2^32-1; the alert's
	// thresholds are 14 and 3 days.
	status, body := rawHTTP(t, addr, "GET", "/stats/prometheus?filter=days_until_first_cert_expiring")
	var days string
	for _, line := range strings.Split(body, "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "envoy_server_days_until_first_cert_expiring") {
			days = strings.TrimSpace(value)
		}
	}
	if status != 200 || (days != "0" && days != "1") {
		t.Errorf("envoy_server_days_until_first_cert_expiring = %q (HTTP %d), want 0 or 1 for 24-hour certificates", days, status)
	}
	if v, err := c.Envoy.Stat("server.state"); err != nil || v != 0 {
		t.Errorf("server.state = %d (%v), want 0 (LIVE)", v, err)
	}
}

// rawHTTP sends one HTTP/1.1 request with the path exactly as given (Go's client
// would clean dot segments) and returns the status and body.
func rawHTTP(t *testing.T, addr, method, path string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMonitoringNamesRealMetrics: every metric that the shipped dashboard and alert
// rules query exists in a real scrape: serve's /metrics after allowed, denied and
// cache-hit Checks, and Envoy's /stats/prometheus through the stats listener. A
// renamed metric, a typo or an Envoy stat that only exists in some other config fails
// here instead of leaving an empty panel or an alert that can never fire.
func TestMonitoringNamesRealMetrics(t *testing.T) {
	t.Parallel()
	c := harness.StartChain(t, harness.ChainOptions{})
	admin := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	for i := 0; i < 3; i++ { // a miss, then cache hits
		if r := c.Kubectl(t, admin, "auth", "whoami"); r.ExitCode != 0 {
			t.Fatalf("kubectl auth whoami: %+v", r)
		}
	}
	if r := c.Kubectl(t, harness.KubeUser(harness.IdentityUnmapped, harness.ProducerToken, "default"), "auth", "whoami"); r.ExitCode == 0 {
		t.Fatalf("unmapped identity was let in: %+v", r)
	}
	if r := c.KubectlWithToken(t, "default", "k8s-aws-v1.not-a-token", "auth", "whoami"); r.ExitCode == 0 {
		t.Fatalf("garbage token was let in: %+v", r)
	}

	have, err := harness.ScrapeMetricNames("http://" + c.Serve.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	envoy, err := harness.ScrapeMetricNames("http://" + c.EnvoyStats["stats"] + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if !have["kube_iam_authz_checks_total"] || !envoy["envoy_http_ext_authz_ok"] {
		t.Fatalf("scrapes look wrong: serve has %d names, envoy %d", len(have), len(envoy))
	}
	for n := range envoy {
		have[n] = true
	}

	var queries []harness.Query
	for _, src := range []struct {
		path string
		read func(string) ([]harness.Query, error)
	}{
		{filepath.Join("examples", "monitoring", "grafana-dashboard.json"), harness.DashboardQueries},
		{filepath.Join("examples", "monitoring", "prometheus-rules.yaml"), harness.RuleQueries},
	} {
		qs, err := src.read(harness.RepoFile(t, src.path))
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) < 5 {
			t.Fatalf("%s: only %d queries", src.path, len(qs))
		}
		for i := range qs {
			qs[i].Where = src.path + ": " + qs[i].Where
		}
		queries = append(queries, qs...)
	}
	for _, q := range queries {
		names, err := harness.PromQLMetricNames(q.Expr)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q queries no metric", q.Where, q.Expr)
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s: %s is in no real scrape (serve /metrics, envoy /stats/prometheus)", q.Where, n)
			}
		}
	}
}
