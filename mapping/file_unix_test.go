//go:build unix

package mapping

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReadFileDoesNotBlockOnFIFO: a mapping path replaced by a named pipe
// must be refused at once. A plain open for reading blocks until a writer
// appears, which used to hang the watcher's reload (and every later reload,
// behind the load lock) forever.
func TestReadFileDoesNotBlockOnFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aws-auth.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(path, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ReadFile accepted a FIFO")
		}
	case <-time.After(5 * time.Second):
		// Unblock the reader so the test binary can exit.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			_ = w.Close()
		}
		t.Fatal("ReadFile blocked on a FIFO")
	}
}
