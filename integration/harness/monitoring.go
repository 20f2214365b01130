package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"sigs.k8s.io/yaml"
)

// grafanaRangeVars are Grafana's built-in range variables, replaced by a duration
// before an expression is parsed (they are not PromQL).
var grafanaRangeVars = regexp.MustCompile(`\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}`)

// PromQLMetricNames returns the sorted, distinct metric names an expression selects.
// An expression that selects series without a literal metric name (a bare {…} or a
// regular expression on __name__) is an error: which metrics it needs cannot be
// checked.
func PromQLMetricNames(expr string) ([]string, error) {
	e, err := metricsql.Parse(grafanaRangeVars.ReplaceAllString(expr, "5m"))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	names := map[string]bool{}
	var errs []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		me, ok := x.(*metricsql.MetricExpr)
		if !ok || me.IsEmpty() {
			return
		}
		for _, group := range me.LabelFilterss {
			if len(group) == 0 || group[0].Label != "__name__" || group[0].IsRegexp || group[0].IsNegative || group[0].Value == "" {
				errs = append(errs, string(me.AppendString(nil)))
				continue
			}
			names[group[0].Value] = true
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%q selects series without a literal metric name: %v", expr, errs)
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Query is one PromQL expression of a dashboard or rules file, with where it is.
type Query struct {
	Where string
	Expr  string
}

// grafanaPanel is what DashboardQueries reads of a Grafana panel (rows nest panels).
type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// DashboardQueries returns every target expression of a Grafana dashboard JSON file
// and every query of its template variables.
func DashboardQueries(path string) ([]Query, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Query
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, Query{Where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		// label_values(metric, label) is Grafana's, not PromQL: check its metric.
		if inner, ok := strings.CutPrefix(q, "label_values("); ok {
			q = strings.TrimSpace(strings.SplitN(strings.TrimSuffix(inner, ")"), ",", 2)[0])
		}
		out = append(out, Query{Where: fmt.Sprintf("variable %q", v.Name), Expr: q})
	}
	return out, nil
}

// RuleFile is the part of a Prometheus rules file (or a PrometheusRule's spec) the
// checks read.
type RuleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string `json:"alert"`
			Record string `json:"record"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// RuleQueries returns every rule expression of a Prometheus rules file.
func RuleQueries(path string) ([]Query, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f RuleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, Query{Where: fmt.Sprintf("group %q rule %s%s", g.Name, r.Alert, r.Record), Expr: r.Expr})
		}
	}
	return out, nil
}

// ScrapeMetricNames GETs a Prometheus text exposition and returns the metric names of
// its samples (histogram and summary series under their _bucket, _sum, _count names,
// as PromQL sees them).
func ScrapeMetricNames(url string) (map[string]bool, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		names[line[:end]] = true
	}
	return names, sc.Err()
}
