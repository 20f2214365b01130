package examples

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// Monitoring files. Which metrics they name is checked against real scrapes in
// integration/e2e/monitoring_test.go; here their syntax and behaviour.
var (
	rulesFile     = filepath.Join("monitoring", "prometheus-rules.yaml")
	rulesTestFile = filepath.Join("monitoring", "prometheus-rules_test.yaml")
	dashboardFile = filepath.Join("monitoring", "grafana-dashboard.json")
)

// promtool returns Debian's promtool (`make debs` installs the prometheus package).
// Missing is a failure, not a skip: these checks are what keeps the rules honest.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: run `make debs` (Debian's prometheus package ships it): %v", err)
	}
	return path
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrometheusRules: promtool check rules (syntax, templates) and promtool test
// rules (each alert fires on its condition and stays quiet short of it).
func TestPrometheusRules(t *testing.T) {
	out := runPromtool(t, ".", "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
	out = runPromtool(t, filepath.Dir(rulesTestFile), "test", "rules", filepath.Base(rulesTestFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}

	// Every alert has a unit test, and a severity the routing can use.
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `json:"alert"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no promtool unit test", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d alerts", n)
	}
}

// TestDashboardQueriesArePromQL: every dashboard query names its metrics literally
// and is valid PromQL to Prometheus itself (each is checked as a recording rule by
// promtool, with Grafana's range variables replaced).
func TestDashboardQueriesArePromQL(t *testing.T) {
	queries, err := harness.DashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 10 {
		t.Fatalf("only %d dashboard queries", len(queries))
	}
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, q := range queries {
		if _, err := harness.PromQLMetricNames(q.Expr); err != nil {
			t.Errorf("%s: %v", q.Where, err)
		}
		expr := strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$namespace", ".*").Replace(q.Expr)
		js, _ := yaml.Marshal(expr)
		fmt.Fprintf(&b, "  - record: dashboard:query_%d\n    expr: %s", i, strings.ReplaceAll(string(js), "\n", "\n      "))
		b.WriteString("\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard-rules.yaml")
}
