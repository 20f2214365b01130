package mapping

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// kubeletDataLink is the symlink a Kubernetes ConfigMap volume swaps
// atomically (kubelet AtomicWriter): the visible file aws-auth.yaml is a
// symlink to ..data/aws-auth.yaml and is never written itself, so a watch on
// the file misses every update (kubernetes/kubernetes#112677; fsnotify
// README, "watch the parent directory").
const kubeletDataLink = "..data"

// Run watches the file's directory and reloads on changes until ctx ends.
// If nothing is loaded yet it first calls Load and returns its error, so
// `if err := store.Run(ctx)` is also the start-up check; the usual pattern
// is Load (exit on error) then `go store.Run(ctx)`.
//
// Watching the directory rather than the file catches in-place writes,
// editors' write-to-temp-then-rename, the kubelet's ..data symlink swap and
// deletion followed by re-creation. Events are debounced; a periodic resync
// (StoreOptions.Resync) covers lost events. A reload of identical bytes is
// a no-op.
func (s *Store) Run(ctx context.Context) error {
	if s.external {
		return fmt.Errorf("mapping: %s is fed by its source, not watched as a file", s.path)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("mapping: starting the file watcher: %w", err)
	}
	defer w.Close()
	if err := w.Add(s.dir); err != nil {
		return fmt.Errorf("mapping: watching %s: %w", s.dir, err)
	}
	// Load after the watch is in place so that a change between an earlier
	// Load and now is not missed.
	if s.Current() == nil {
		if err := s.Load(); err != nil {
			return err
		}
	} else {
		_, _ = s.reload()
	}
	var resync <-chan time.Time
	if s.resync > 0 {
		t := time.NewTicker(s.resync)
		defer t.Stop()
		resync = t.C
	}
	var fire <-chan time.Time
	var pendingSince time.Time
	schedule := func() {
		now := s.clock()
		if fire == nil {
			pendingSince = now
		} else if now.Sub(pendingSince) >= s.maxDelay {
			return // let the armed timer fire: events must not postpone forever
		}
		fire = s.after(s.debounce)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("mapping: file watcher closed")
			}
			if s.relevant(ev) {
				schedule()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("mapping: file watcher closed")
			}
			// fsnotify.ErrEventOverflow means events were dropped: re-read.
			s.log.Warn("file watcher error; re-reading the mapping", zap.Error(err))
			schedule()
		case <-fire:
			fire = nil
			_, _ = s.reload()
		case <-resync:
			_, _ = s.reload()
		}
	}
}

// relevant keeps events on the file itself and on the kubelet's ..data
// link; other files in the directory (editor swap files, other ConfigMap
// keys) do not trigger a reload. Chmod alone changes no content.
func (s *Store) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Base(ev.Name)
	return name == s.base || name == kubeletDataLink
}
