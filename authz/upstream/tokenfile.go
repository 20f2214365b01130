// Package upstream holds the proxy's own credential for the upstream
// Kubernetes API server: a bearer token read from a file, normally a
// projected service-account token that the kubelet rotates.
package upstream

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/internal/dirwatch"
)

// Defaults and bounds.
const (
	// DefaultInterval is the safety-net re-read period. The kubelet
	// refreshes a projected token at 80% of its lifetime (at least 10 min
	// for the minimum lifetime), so a minute is far inside any window.
	DefaultInterval = time.Minute
	// maxTokenBytes bounds what is read: service-account JWTs are about a
	// kilobyte; anything near this bound is a wrong file.
	maxTokenBytes = 64 << 10
)

// ErrInvalidToken is wrapped when the file cannot be used as a token.
var ErrInvalidToken = errors.New("invalid upstream token file")

// Options configure a TokenFile.
type Options struct {
	// Path of the token file.
	Path string
	// Interval between safety-net re-reads (fsnotify can miss events, e.g.
	// on some network file systems). Default DefaultInterval.
	Interval time.Duration
	// Name labels the file in metrics and logs when a process follows
	// several (one per cluster); default "default".
	Name string
	// Logger; never sees the token.
	Logger *zap.Logger
	// Metrics, if set, records reads (see NewMetrics).
	Metrics *Metrics
	// Now is the clock for the last-success timestamp; time.Now if nil.
	Now func() time.Time
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Path == "" {
		errs = append(errs, errors.New("upstream token: empty path"))
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("upstream token: negative interval %s", o.Interval))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("upstream token: Logger is required"))
	}
	return errors.Join(errs...)
}

// TokenFile serves the current token from a file and follows its changes.
type TokenFile struct {
	path     string
	name     string
	interval time.Duration
	log      *zap.Logger
	now      func() time.Time
	metrics  *Metrics
	current  atomic.Pointer[string]
}

// NewTokenFile reads the token once. A missing, unreadable or empty file is
// an error: starting without a credential would send every request upstream
// as anonymous (or fail every one of them) with no clear cause.
func NewTokenFile(o Options) (*TokenFile, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Name == "" {
		o.Name = "default"
	}
	f := &TokenFile{
		path:     o.Path,
		name:     o.Name,
		interval: o.Interval,
		log:      o.Logger.With(zap.String("upstream_token", o.Name), zap.String("path", o.Path)),
		now:      o.Now,
		metrics:  o.Metrics,
	}
	if f.metrics != nil {
		f.metrics.init(o.Name)
	}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// BearerToken returns the last good token.
func (f *TokenFile) BearerToken() string {
	if p := f.current.Load(); p != nil {
		return *p
	}
	return ""
}

// Reload reads the file now. On failure the previous token stays in use:
// an API server accepts a projected token until it expires, which is long
// after the kubelet started writing its successor.
func (f *TokenFile) Reload() error {
	tok, err := readToken(f.path)
	if err != nil {
		f.metrics.read(f.name, false, time.Time{})
		return err
	}
	f.metrics.read(f.name, true, f.now())
	// Constant-time: tok is a credential (whether it changed is not secret,
	// but how many leading bytes did should not be measurable either).
	if old := f.current.Load(); old == nil || subtle.ConstantTimeCompare([]byte(*old), []byte(tok)) != 1 {
		f.current.Store(&tok)
		if old != nil {
			f.log.Info("upstream token rotated")
		}
	}
	return nil
}

func readToken(path string) (string, error) {
	// O_NONBLOCK: opening a FIFO for reading otherwise blocks until a
	// writer appears, hanging the watcher forever; the regular-file check
	// then refuses it. It has no effect on reading a regular file.
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	defer file.Close()
	if info, err := file.Stat(); err != nil || !info.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrInvalidToken, path)
	}
	b, err := io.ReadAll(io.LimitReader(file, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidToken, path, err)
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidToken, path, maxTokenBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrInvalidToken, path)
	}
	// The token becomes an Authorization header value: control characters
	// (an embedded newline) would corrupt or split it.
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: %s contains a control character", ErrInvalidToken, path)
		}
	}
	return tok, nil
}

// Run follows the file until ctx ends. It watches the parent directory,
// not the file: the kubelet updates projected volumes by writing a new
// timestamped directory and atomically swapping the ..data symlink, so a
// watch on the file itself goes stale after the first rotation
// (kubernetes/kubernetes#112677; fsnotify recommends watching the
// directory). A periodic re-read covers missed events.
func (f *TokenFile) Run(ctx context.Context) error {
	return dirwatch.Run(ctx, dirwatch.Options{
		Name:     "upstream token",
		Files:    []string{f.path},
		Interval: f.interval,
		Reload: func(why string) {
			if err := f.Reload(); err != nil {
				f.log.Warn("upstream token re-read failed; keeping the last good token",
					zap.String("trigger", why), zap.Error(err))
			}
		},
		WatchError: func(err error) { f.log.Warn("upstream token watcher error", zap.Error(err)) },
	})
}
