//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// relReq is one request of a load run.
type relReq struct {
	class  string // what the caller expects, for the tally
	tok    string
	header http.Header
}

// loadTally counts outcomes per class: HTTP status, or "error" for a transport error.
type loadTally struct {
	mu     sync.Mutex
	counts map[string]map[string]int
}

func (l *loadTally) add(class, outcome string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]map[string]int{}
	}
	if l.counts[class] == nil {
		l.counts[class] = map[string]int{}
	}
	l.counts[class][outcome]++
}

func (l *loadTally) get(class, outcome string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[class][outcome]
}

// outcomes returns the set of outcomes seen for a class.
func (l *loadTally) outcomes(class string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for o := range l.counts[class] {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

func (l *loadTally) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	classes := make([]string, 0, len(l.counts))
	for c := range l.counts {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		fmt.Fprintf(&b, "%s: %v; ", c, l.counts[c])
	}
	return b.String()
}

// runLoad sends requests from workers closed-loop workers until ctx ends. next picks
// the request for a worker's i-th iteration. It returns when every worker is done.
func runLoad(ctx context.Context, t *testing.T, s *relStack, workers int, next func(worker, i int) relReq) *loadTally {
	t.Helper()
	tally := &loadTally{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				rq := next(w, i)
				r := s.do(t, http.MethodGet, "/version", rq.tok, rq.header)
				outcome := fmt.Sprint(r.status)
				if r.err != nil {
					outcome = "error"
				}
				tally.add(rq.class, outcome)
				// A little breathing room for the 2-core machine.
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return tally
}
