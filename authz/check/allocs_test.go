package check

import (
	"context"
	"testing"
)

// maxCacheHitAllocs is the allocation budget of a cache-hit Check (issue
// 16: at most 8). What they are, in the order a hit makes them: the copy of
// the Authorization value out of the request, the checkState (decision,
// trace context and response envelope together), the decision id, the
// rendered username and groups of a templated mapping, and the response's
// metadata map (a map header and one group). A count, not a timing: a new
// allocation on the hot path fails here rather than in a benchmark nobody
// reads.
const maxCacheHitAllocs = 8

func TestCheckCacheHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, logging := range []bool{false, true} {
		s, req := benchServer(t, logging)
		ctx := context.Background()
		n := testing.AllocsPerRun(200, func() {
			resp, _ := s.Check(ctx, req)
			if resp.GetOkResponse() == nil {
				t.Fatal("not OK")
			}
		})
		if n > maxCacheHitAllocs {
			t.Errorf("logging=%v: a cache-hit Check allocates %.0f times, want at most %d", logging, n, maxCacheHitAllocs)
		}
	}
}
