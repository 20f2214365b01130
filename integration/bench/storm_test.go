//go:build bench || integration

package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// stormResult is what a token storm did.
type stormResult struct {
	requests int
	failed   int
	firstErr error
	stsCalls int64
	elapsed  time.Duration
}

// tokenStorm sends requests Checks from conc goroutines, released together,
// cycling through tokens, and counts the STS calls the stand-in saw.
func tokenStorm(t testing.TB, ck *checker, s *sts, tokens []string, requests, conc int) stormResult {
	t.Helper()
	before := s.total(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu   sync.Mutex
		res  = stormResult{requests: requests}
		wg   sync.WaitGroup
		gate = make(chan struct{})
		next = make(chan int, requests)
	)
	for i := range requests {
		next <- i
	}
	close(next)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for i := range next {
				if err := ck.check(ctx, tokens[i%len(tokens)]); err != nil {
					mu.Lock()
					res.failed++
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.stsCalls = s.total(t) - before
	return res
}
