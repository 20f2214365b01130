package check

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// logLine is what the tests read of a JSON log line.
type logLine struct {
	Level         string  `json:"level"`
	Msg           string  `json:"msg"`
	Decision      string  `json:"decision"`
	Reason        string  `json:"reason"`
	CacheHit      *bool   `json:"cache_hit"`
	ARN           string  `json:"arn"`
	Username      string  `json:"username"`
	Cluster       string  `json:"cluster"`
	Count         uint64  `json:"count"`
	Interval      float64 `json:"interval"` // seconds
	FirstDecision string  `json:"first_decision"`
	LastDecision  string  `json:"last_decision"`
}

func parseLines(t *testing.T, logs string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, ll)
	}
	return out
}

// summarize renders decision lines as "level reason hit|miss" and summary lines as
// "level cache hits USER xCOUNT", in order.
func summarize(lines []logLine) []string {
	var out []string
	for _, l := range lines {
		switch l.Msg {
		case "decision":
			hit := "miss"
			if l.CacheHit != nil && *l.CacheHit {
				hit = "hit"
			}
			out = append(out, fmt.Sprintf("%s %s %s", l.Level, l.Reason, hit))
		case "cache hits":
			out = append(out, fmt.Sprintf("%s cache hits %s x%d", l.Level, l.Username, l.Count))
		}
	}
	return out
}

// TestDecisionLogLevels: every miss, denial and error has its own decision line;
// allowed cache hits are one summary line per identity per interval (each at debug),
// or one line each with LogCacheHits.
func TestDecisionLogLevels(t *testing.T) {
	tests := map[string]struct {
		opts e2eOptions
		want []string
	}{
		"info, summarised hits": {
			opts: e2eOptions{infoLogs: true},
			want: []string{
				"info ok miss", "info unmapped miss", "warn sts_unavailable miss",
				"info cache hits bob x3",
			},
		},
		"info, every hit logged": {
			opts: e2eOptions{infoLogs: true, logCacheHits: true},
			want: []string{
				"info ok miss", "info ok hit", "info ok hit", "info unmapped miss", "warn sts_unavailable miss", "info ok hit",
			},
		},
		"debug, hits at debug and summarised": {
			opts: e2eOptions{},
			want: []string{
				"info ok miss", "debug ok hit", "debug ok hit", "info unmapped miss", "warn sts_unavailable miss", "debug ok hit",
				"info cache hits bob x3",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newE2E(t, tc.opts)
			bob := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
			e.check(t, request(bearer(bob), nil)) // miss
			e.check(t, request(bearer(bob), nil)) // hit
			e.check(t, request(bearer(bob), nil)) // hit
			e.check(t, request(bearer(e.sign(t, credNobody, "sts.amazonaws.com", e2eCluster)), nil))
			if err := e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503}); err != nil {
				t.Fatal(err)
			}
			e.check(t, request(bearer(e.sign(t, credCarol, "sts.amazonaws.com", e2eCluster)), nil))
			e.check(t, request(bearer(bob), nil)) // still a hit: STS is not asked
			e.clock.Add(time.Minute)
			e.srv.FlushCacheHits()

			got := summarize(parseLines(t, e.logs.String()))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("log lines:\n%s\nwant:\n%s\n\nfull log:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), e.logs.String())
			}
			for _, l := range parseLines(t, e.logs.String()) {
				if l.Msg != "cache hits" {
					continue
				}
				if l.ARN != pBob.ARN || l.Cluster != "default" || l.Interval != 60 || l.FirstDecision == "" || l.LastDecision == "" || l.FirstDecision == l.LastDecision {
					t.Errorf("summary line %+v: want bob's ARN, cluster default, interval 60s and distinct first/last decision ids", l)
				}
			}
		})
	}
}

// TestCacheHitSummaryResets: a flush starts a new interval; an empty interval
// writes nothing.
func TestCacheHitSummaryResets(t *testing.T) {
	e := newE2E(t, e2eOptions{infoLogs: true})
	bob := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	e.check(t, request(bearer(bob), nil))
	e.check(t, request(bearer(bob), nil))
	e.srv.FlushCacheHits()
	e.srv.FlushCacheHits()
	e.check(t, request(bearer(bob), nil))
	e.check(t, request(bearer(bob), nil))
	e.srv.FlushCacheHits()
	got := summarize(parseLines(t, e.logs.String()))
	want := []string{"info ok miss", "info cache hits bob x1", "info cache hits bob x2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("lines %v, want %v", got, want)
	}
}

// TestCacheHitSummaryBound: past maxHitIdentities identities in one interval, hits
// are counted in one total line instead of itemised.
func TestCacheHitSummaryBound(t *testing.T) {
	h := newHitSummary(time.Unix(0, 0))
	for i := range maxHitIdentities + 5 {
		d := &decision{id: fmt.Sprint(i), cluster: "c", arn: fmt.Sprintf("arn:aws:iam::111122223333:user/u%d", i), username: "u"}
		h.add(d)
		h.add(d)
	}
	counts, other, _ := h.take(time.Unix(60, 0))
	if len(counts) != maxHitIdentities || other != 10 {
		t.Fatalf("itemised %d identities, other %d; want %d and 10", len(counts), other, maxHitIdentities)
	}
	for k, c := range counts {
		if c.n != 2 {
			t.Fatalf("%v counted %d, want 2", k, c.n)
		}
	}
	if c2, o2, since := h.take(time.Unix(120, 0)); len(c2) != 0 || o2 != 0 || !since.Equal(time.Unix(60, 0)) {
		t.Errorf("after take: %d counts, other %d, since %v", len(c2), o2, since)
	}
}

// TestRunCacheHitSummary: the background task writes the summary on its own, with
// no Check to trigger it, and stops with its context.
func TestRunCacheHitSummary(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := New(Options{
		Verifier:           &fakeVerifier{},
		Clusters:           []Cluster{{Name: "default", ID: "c", Mapper: &fakeMapper{}}},
		Logger:             zap.New(core),
		Registerer:         prometheus.NewRegistry(),
		HitSummaryInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.hits.add(&decision{id: "1", cluster: "default", arn: "arn:aws:iam::111122223333:user/bob", username: "bob"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunCacheHitSummary(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for logs.FilterMessage("cache hits").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunCacheHitSummary = %v", err)
	}
	lines := logs.FilterMessage("cache hits").All()
	if len(lines) != 1 || lines[0].ContextMap()["count"] != uint64(1) || lines[0].ContextMap()["username"] != "bob" {
		t.Fatalf("summary lines %+v, want one for bob with count 1", lines)
	}
}
