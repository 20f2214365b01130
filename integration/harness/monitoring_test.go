package harness

import (
	"strings"
	"testing"
)

func TestPromQLMetricNames(t *testing.T) {
	tests := map[string]struct {
		expr    string
		want    []string
		wantErr string
	}{
		"one selector": {expr: `up`, want: []string{"up"}},
		"ratio with grouping and matchers": {
			expr: `sum by (pod) (rate(kube_iam_authz_checks_total{result="denied",reason!~"no_token|x"}[$__rate_interval]))
			       / ignoring(result) group_left sum by (pod) (rate(kube_iam_authz_checks_total[5m]))`,
			want: []string{"kube_iam_authz_checks_total"},
		},
		"histogram quantile": {
			expr: `histogram_quantile(0.99, sum by (le) (rate(kube_iam_authz_check_duration_seconds_bucket[${__rate_interval}])))`,
			want: []string{"kube_iam_authz_check_duration_seconds_bucket"},
		},
		"label names and strings are not metrics": {
			expr: `max by (mapping) (time() - kube_iam_authz_mapping_last_success_timestamp_seconds{mapping="default"}) > 3600 and on(mapping) kube_iam_authz_mapping_last_reload_successful == 0`,
			want: []string{"kube_iam_authz_mapping_last_reload_successful", "kube_iam_authz_mapping_last_success_timestamp_seconds"},
		},
		"offset and bool": {expr: `envoy_cluster_upstream_rq_xx offset 1h > bool 0`, want: []string{"envoy_cluster_upstream_rq_xx"}},
		"name by matcher": {expr: `{__name__="up"}`, want: []string{"up"}},
		"no metric name":  {expr: `{job="x"}`, wantErr: "without a literal metric name"},
		"name by regex":   {expr: `{__name__=~"kube_.*"}`, wantErr: "without a literal metric name"},
		"not PromQL":      {expr: `sum(rate(x[5m]`, wantErr: "sum(rate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := PromQLMetricNames(tc.expr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("PromQLMetricNames = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
