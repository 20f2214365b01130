//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFaultsMappingUnderLoad: while requests flow, the mapping file is corrupted,
// truncated, replaced by a directory, by a named pipe and by a symlink loop, and
// deleted. Throughout, the last good mapping keeps serving (mapped users 200, the
// unmapped one 403, nothing else); each failure shows in the reload metrics, in the
// log and in /readyz (still 200, saying which file failed and which mapping is kept).
// A later good file is picked up, and /readyz is plain "ok" again.
func TestFaultsMappingUnderLoad(t *testing.T) {
	s := newRelStack(t, relOptions{apiserverExtraArgs: []string{"--record-capacity", "10000"}})
	alice, bob, mallory := s.token(t, "alice"), s.token(t, "bob"), s.token(t, "mallory")
	wantOK(t, "alice", s.get(t, alice))
	wantOK(t, "bob", s.get(t, bob))
	wantStatus(t, "mallory", s.get(t, mallory), 403, "Forbidden")

	ctx, cancel := context.WithCancel(context.Background())
	var tally *loadTally
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tally = runLoad(ctx, t, s, 3, func(w, i int) relReq {
			switch w {
			case 0:
				return relReq{class: "mapped", tok: alice}
			case 1:
				return relReq{class: "mapped", tok: bob}
			default:
				return relReq{class: "unmapped", tok: mallory}
			}
		})
	}()
	defer func() { cancel(); wg.Wait() }()

	good, err := os.ReadFile(s.mappingPath)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(make func(path string) error) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.RemoveAll(s.mappingPath); err != nil {
				t.Fatal(err)
			}
			if err := make(s.mappingPath); err != nil {
				t.Fatal(err)
			}
		}
	}
	faults := []struct {
		name       string
		apply      func(t *testing.T)
		wantResult string
	}{
		{"corrupted", func(t *testing.T) {
			writeFileAtomic(t, s.mappingPath, "data:\n  mapUsers: |\n    - userarn: [\n")
		}, "invalid"},
		{"truncated mid-entry", func(t *testing.T) {
			// Cut inside the Dev role's group list, as a writer that died mid-write
			// leaves it: mapRoles no longer parses, a structural error. (A cut that
			// leaves valid YAML is indistinguishable from an edit: an entry it breaks
			// is dropped, the rest loads, as aws-iam-authenticator does; the
			// kubelet's atomic ConfigMap writes never produce either.)
			cut := strings.Index(string(good), "viewers]") + 3
			if err := os.WriteFile(s.mappingPath, good[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
		}, "invalid"},
		{"replaced by a directory", replace(func(p string) error { return os.Mkdir(p, 0o700) }), "read_error"},
		{"replaced by a named pipe", replace(func(p string) error { return syscall.Mkfifo(p, 0o600) }), "read_error"},
		{"unreadable (a symlink loop)", replace(func(p string) error { return os.Symlink(p, p) }), "read_error"},
		{"deleted", replace(func(string) error { return nil }), "missing"},
	}
	for _, f := range faults {
		metric := fmt.Sprintf(`kube_iam_authz_mapping_reloads_total{mapping="default",result=%q}`, f.wantResult)
		before, _ := metricValue(serveMetrics(t, s.serve), metric)
		f.apply(t)
		waitUntil(t, 10*time.Second, f.name+": the failed reload to be counted", func() bool {
			v, _ := metricValue(serveMetrics(t, s.serve), metric)
			return v > before
		})
		metrics := serveMetrics(t, s.serve)
		if v, ok := metricValue(metrics, `kube_iam_authz_mapping_last_reload_successful{mapping="default"}`); !ok || v != 0 {
			t.Errorf("%s: last_reload_successful = %v (found %v), want 0", f.name, v, ok)
		}
		code, body, err := serveGet(s.serve, "/readyz")
		if err != nil || code != http.StatusOK || !strings.Contains(body, "mapping default: last reload "+f.wantResult) ||
			!strings.Contains(body, "serving the last good mapping sha256") {
			t.Errorf("%s: /readyz = %d %v %q, want 200 naming the failure", f.name, code, err, body)
		}
		// serve buffers its log lines for up to a second.
		waitUntil(t, 15*time.Second, f.name+": a log line about keeping the last good mapping", func() bool {
			return strings.Contains(s.serve.Stderr(), "keeping the last good mapping")
		})
		// Still serving, with the last good mapping.
		wantOK(t, f.name+": alice", s.get(t, alice))
		wantStatus(t, f.name+": mallory", s.get(t, mallory), 403, "Forbidden")
	}

	// A good file again, with a change that shows: bob becomes bob-v2.
	if err := os.RemoveAll(s.mappingPath); err != nil {
		t.Fatal(err)
	}
	since := s.lastSeq(t)
	writeFileAtomic(t, s.mappingPath, strings.Replace(string(good), "username: bob", "username: bob-v2", 1))
	waitUntil(t, 10*time.Second, "the good file to be picked up", func() bool {
		code, body, _ := serveGet(s.serve, "/readyz")
		return code == http.StatusOK && body == "ok\n"
	})
	wantOK(t, "bob after the fix", s.get(t, bob))
	var sawV2 bool
	for _, r := range s.recorded(t, since) {
		for _, u := range r.Lines("Impersonate-User") {
			sawV2 = sawV2 || u == "bob-v2"
		}
	}
	if !sawV2 {
		t.Error("the API server never saw bob-v2: the new mapping was not applied")
	}
	if v, _ := metricValue(serveMetrics(t, s.serve), `kube_iam_authz_mapping_last_reload_successful{mapping="default"}`); v != 1 {
		t.Errorf("last_reload_successful = %v after the fix, want 1", v)
	}

	cancel()
	wg.Wait()
	t.Logf("outcomes: %s", tally)
	for class, want := range map[string]string{"mapped": "200", "unmapped": "403"} {
		if o := tally.outcomes(class); len(o) != 1 || o[0] != want {
			t.Errorf("%s requests under mapping faults: outcomes %v, want only %s", class, o, want)
		}
	}

	// A file cut inside bob's ARN, as a writer that died mid-write leaves it,
	// still parses: under aws-iam-authenticator's semantics (the default;
	// docs/mapping.md) it is a file with one entry that is invalid on its own.
	// That entry grants nothing and is reported; the rest loads. (The kubelet's
	// atomic ConfigMap writes never produce such a file; --mapping-strict keeps
	// the last good mapping instead, mapping/store_test.go.)
	cut := strings.Index(string(good), ":user/bob") - 4
	if err := os.WriteFile(s.mappingPath, good[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "truncated mid-entry: the dropped entry to be counted", func() bool {
		v, _ := metricValue(serveMetrics(t, s.serve), `kube_iam_authz_mapping_dropped_entries{mapping="default"}`)
		return v == 1
	})
	wantOK(t, "truncated mid-entry: alice", s.get(t, alice))
	wantStatus(t, "truncated mid-entry: bob, whose entry was cut", s.get(t, bob), 403, "Forbidden")
	waitUntil(t, 15*time.Second, "truncated mid-entry: a log line naming the dropped entry", func() bool {
		return strings.Contains(s.serve.Stderr(), "mapping entry dropped; it grants nothing")
	})
}
