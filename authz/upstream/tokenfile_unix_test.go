//go:build unix

package upstream

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReloadRefusesSpecialFiles: a token path replaced by a named pipe or a
// directory keeps the last good token, and a FIFO does not block the
// reload (a plain open for reading waits for a writer forever, which used
// to hang the watcher).
func TestReloadRefusesSpecialFiles(t *testing.T) {
	tests := map[string]struct {
		replace func(path string) error
	}{
		"fifo":      {replace: func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		"directory": {replace: func(p string) error { return os.Mkdir(p, 0o700) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			write(t, path, "first")
			f, _, _, err := newTestFile(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := tc.replace(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- f.Reload() }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Reload = %v, want ErrInvalidToken", err)
				}
			case <-time.After(5 * time.Second):
				if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
					_ = w.Close()
				}
				t.Fatal("Reload blocked")
			}
			if got := f.BearerToken(); got != "first" {
				t.Errorf("BearerToken = %q, want the last good token", got)
			}
		})
	}
}
