//go:build integration

package bench

import (
	"testing"
	"time"
)

// TestTokenStormCallsSTSOncePerToken proves the cache's single flight
// against the real server and the STS stand-in: concurrent Checks with the
// same new token make one STS call, and a burst over many tokens makes one
// call per token. These are counts, not timings.
func TestTokenStormCallsSTSOncePerToken(t *testing.T) {
	w := newWorld(t, 4)
	// The latency keeps the first call in flight while the others arrive,
	// so the test exercises the shared flight, not only the cache.
	s := startSTS(t, w, 200*time.Millisecond)
	srv := startServe(t, w, s, serveOptions{logLevel: "warn"})
	ck := dialCheck(t, srv.grpcAddr)

	next := 0
	tests := map[string]struct {
		tokens, requests, conc int
		wantSTSCalls           int64
	}{
		"100 concurrent requests, one new token":   {tokens: 1, requests: 100, conc: 100, wantSTSCalls: 1},
		"10k requests over 100 new tokens":         {tokens: 100, requests: 10_000, conc: 100, wantSTSCalls: 100},
		"1000 requests over 10 tokens, 10 at once": {tokens: 10, requests: 1000, conc: 10, wantSTSCalls: 10},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tokens := w.freshTokens(t, &next, tc.tokens)
			got := tokenStorm(t, ck, s, tokens, tc.requests, tc.conc)
			if got.failed != 0 {
				t.Errorf("%d of %d Checks failed, first: %v", got.failed, got.requests, got.firstErr)
			}
			if got.stsCalls != tc.wantSTSCalls {
				t.Errorf("STS calls = %d, want %d", got.stsCalls, tc.wantSTSCalls)
			}
		})
	}
}
