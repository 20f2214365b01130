//go:build integration

package e2e

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestMappingReload: the aws-auth file is a ConfigMap volume the kubelet updates
// under a running server. A new mapping applies to the very next request after the
// server has loaded it, with no restart; a corrupt one is refused and the last good
// mapping keeps serving. The API server is the real kube-apiserver.
func TestMappingReload(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	const (
		success = `kube_iam_authz_mapping_reloads_total{mapping="default",result="success"}`
		invalid = `kube_iam_authz_mapping_reloads_total{mapping="default",result="invalid"}`
		lastOK  = `kube_iam_authz_mapping_last_reload_successful{mapping="default"}`
	)
	groups := func() []string { return whoami(t, c, "default", user).Groups }
	if got, want := groups(), withAuthenticated("system:masters", "ops", "auditors"); !reflect.DeepEqual(got, want) {
		t.Fatalf("initial groups = %q, want %q", got, want)
	}
	pid := c.Serve.Pid()

	// Edit: admin loses system:masters and gains two groups.
	edited := strings.Replace(string(harness.DefaultMapping()),
		"        - system:masters\n        - ops\n        - auditors\n",
		"        - ops\n        - auditors\n        - on-call\n        - break-glass\n", 1)
	successes := c.Serve.Metric(t, success)
	c.UpdateMapping(t, "default", []byte(edited))
	waitMetricAbove(t, c.Serve, success, successes)
	if got, want := groups(), withAuthenticated("ops", "auditors", "on-call", "break-glass"); !reflect.DeepEqual(got, want) {
		t.Errorf("after the edit: groups = %q, want %q", got, want)
	}

	// Corrupt: YAML that does not parse. The edited mapping stays in force.
	invalids := c.Serve.Metric(t, invalid)
	c.UpdateMapping(t, "default", []byte("apiVersion: v1\nkind: ConfigMap\ndata: {mapUsers: [unclosed\n"))
	waitMetricAbove(t, c.Serve, invalid, invalids)
	if got, want := groups(), withAuthenticated("ops", "auditors", "on-call", "break-glass"); !reflect.DeepEqual(got, want) {
		t.Errorf("after the corrupt file: groups = %q, want the last good mapping's %q", got, want)
	}
	if got := c.Serve.Metric(t, lastOK); got != 0 {
		t.Errorf("%s = %v after a corrupt file, want 0", lastOK, got)
	}
	if got := c.Serve.Pid(); got != pid {
		t.Errorf("serve restarted (pid %d → %d)", pid, got)
	}
}

// waitMetricAbove waits until serve's series exceeds v.
func waitMetricAbove(t *testing.T, s *harness.Serve, series string, v float64) {
	t.Helper()
	eventually(t, 15*time.Second, series+" to increase", func() (bool, string) {
		got := s.Metric(t, series)
		return got > v, series + " = " + strconv.FormatFloat(got, 'g', -1, 64)
	})
}
