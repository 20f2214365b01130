// Package dirwatch re-reads files that live in directories the kubelet
// updates: Secret and projected volumes are replaced by swapping a ..data
// symlink, never written in place, so the files themselves produce no event
// worth watching (kubernetes/kubernetes#112677; fsnotify recommends watching
// the directory). A periodic re-read covers missed events.
package dirwatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configure Run.
type Options struct {
	// Name prefixes the errors Run returns ("upstream token").
	Name string
	// Files are the files to follow; their directories are watched.
	Files []string
	// Interval is the period of the safety-net re-read; it must be positive.
	Interval time.Duration
	// Reload re-reads the files; trigger is "start", "timer" or
	// "fsnotify". The caller keeps its last good state on an error and
	// logs it: Run never stops because a read failed.
	Reload func(trigger string)
	// WatchError receives errors from the watcher that do not end it.
	WatchError func(error)
}

// Run reloads once at start (the files may have changed since the caller
// first read them), then on every event in the files' directories and every
// Interval, until ctx ends. It returns an error only when the watch cannot
// be set up or the watcher closes.
func Run(ctx context.Context, o Options) error {
	if o.Interval <= 0 || o.Reload == nil || len(o.Files) == 0 {
		return fmt.Errorf("%s: dirwatch needs files, a positive interval and Reload", o.Name)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("%s: watcher: %w", o.Name, err)
	}
	defer w.Close()
	for _, dir := range Dirs(o.Files...) {
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("%s: watch %s: %w", o.Name, dir, err)
		}
	}
	ticker := time.NewTicker(o.Interval)
	defer ticker.Stop()
	o.Reload("start")
	closed := fmt.Errorf("%s: %w", o.Name, errWatcherClosed)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			o.Reload("timer")
		case ev, ok := <-w.Events:
			if !ok {
				return closed
			}
			// A bare chmod (the kubelet fixing modes) changes no content.
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) {
				continue
			}
			o.Reload("fsnotify")
		case err, ok := <-w.Errors:
			if !ok {
				return closed
			}
			if o.WatchError != nil {
				o.WatchError(err)
			}
		}
	}
}

var errWatcherClosed = errors.New("watcher closed")

// Dirs returns the distinct directories of files, in order.
func Dirs(files ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
