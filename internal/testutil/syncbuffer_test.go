package testutil

import (
	"strings"
	"sync"
	"testing"
)

// TestSyncBufferConcurrentWrites loses no write when many goroutines write
// while the test reads (run with -race).
func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("x", 800); got != want {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
}
