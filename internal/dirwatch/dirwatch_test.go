package dirwatch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRunReloadsOnStartAndOnKubeletSwap: a ..data symlink swap in the watched
// directory (what the kubelet does to a Secret volume) triggers a reload
// without waiting for the timer.
func TestRunReloadsOnStartAndOnKubeletSwap(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	for _, v := range []string{"v1", "v2"} {
		if err := os.MkdirAll(filepath.Join(dir, ".."+v), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".."+v, "token"), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/token", file); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var triggers, contents []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Name: "test", Files: []string{file}, Interval: time.Hour, Reload: func(trigger string) {
			b, _ := os.ReadFile(file)
			mu.Lock()
			defer mu.Unlock()
			triggers, contents = append(triggers, trigger), append(contents, string(b))
		}})
	}()
	seen := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(contents, want)
	}
	waitFor(t, func() bool { return seen("v1") })
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink("..v2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return seen("v2") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if triggers[0] != "start" || !slices.Contains(triggers, "fsnotify") || slices.Contains(triggers, "timer") {
		t.Errorf("triggers %v: want start first, then fsnotify, and no timer within an hour", triggers)
	}
}

func TestRunRefusesIncompleteOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"no files":    {Interval: time.Second, Reload: func(string) {}},
		"no interval": {Files: []string{"/x/y"}, Reload: func(string) {}},
		"no reload":   {Files: []string{"/x/y"}, Interval: time.Second},
	} {
		if err := Run(context.Background(), o); err == nil {
			t.Errorf("%s: Run accepted %+v", name, o)
		}
	}
}

func TestDirs(t *testing.T) {
	if got, want := Dirs("/a/cert", "/a/key", "/b/ca"), []string{"/a", "/b"}; !slices.Equal(got, want) {
		t.Errorf("Dirs = %v, want %v", got, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
