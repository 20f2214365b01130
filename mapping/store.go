package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Path is the mapping file. Required.
	Path string
	// Name identifies the store in logs and in the "mapping" metric label
	// when a process serves several mappings (one per cluster). Defaults to
	// "aws-auth".
	Name string
	// Logger receives reload outcomes. Defaults to a no-op logger.
	Logger *zap.Logger
	// Metrics, if set, records reloads (see NewMetrics).
	Metrics *Metrics
	// Now stamps the last successful reload. Defaults to time.Now.
	Now func() time.Time
	// Debounce is how long the watcher waits after the last file event
	// before reloading, so a burst (an editor's write-then-rename, the
	// kubelet's several renames) costs one parse. Defaults to 250ms.
	Debounce time.Duration
	// MaxDelay bounds how long a steady stream of events can postpone a
	// reload. Defaults to 5s.
	MaxDelay time.Duration
	// Resync re-reads the file this often even without events, as a
	// safety net for lost inotify events (queue overflow) or a replaced
	// directory. Defaults to 1m; negative disables it.
	Resync time.Duration
	// MaxFileBytes bounds the file size. Defaults to (and may not exceed)
	// MaxFileBytes.
	MaxFileBytes int64
	// Source, when set, names an external source that feeds the store
	// through Apply and Missing instead of a file (e.g. "configmap
	// kube-system/aws-auth"); Path must then be empty, Load and Run are not
	// used, and positions in logs read "SOURCE:LINE".
	Source string
	// Strict refuses a file with any error, also one confined to a single
	// entry (--mapping-strict). By default such an entry is dropped and
	// reported, and the rest of the file loads, as aws-iam-authenticator
	// does.
	Strict bool
	// GroupLimit, when positive, is how many groups one request can carry
	// (serve passes authz/check.MaxGroups, the Envoy route's slots). An
	// entry mapping to more still loads, but every request it maps is
	// refused; each load logs it as a warning (Snapshot.GroupsOver), as
	// `mapping check` prints it.
	GroupLimit int
}

// Validate reports every problem with the options.
func (o StoreOptions) Validate() error {
	var errs []error
	switch {
	case o.Path == "" && o.Source == "":
		errs = append(errs, errors.New("mapping: StoreOptions.Path is required"))
	case o.Path != "" && o.Source != "":
		errs = append(errs, errors.New("mapping: StoreOptions.Path and Source are exclusive"))
	}
	if o.Debounce < 0 {
		errs = append(errs, fmt.Errorf("mapping: StoreOptions.Debounce is negative (%s)", o.Debounce))
	}
	if o.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("mapping: StoreOptions.MaxDelay is negative (%s)", o.MaxDelay))
	}
	if o.GroupLimit < 0 {
		errs = append(errs, fmt.Errorf("mapping: StoreOptions.GroupLimit is negative (%d)", o.GroupLimit))
	}
	if o.MaxFileBytes < 0 || o.MaxFileBytes > MaxFileBytes {
		errs = append(errs, fmt.Errorf("mapping: StoreOptions.MaxFileBytes must be between 0 (default) and %d", MaxFileBytes))
	}
	return errors.Join(errs...)
}

// Store holds the mapping in force and reloads it from its file.
//
// Reload policy:
//   - The whole file is parsed and validated into a new Snapshot, which
//     replaces the old one in one atomic pointer swap. Readers never lock
//     and never see a partial mapping.
//   - A file that fails to read, parse or validate keeps the last good
//     snapshot; the failure is logged at error level with every problem
//     and its line, and counted (kube_iam_authz_mapping_reloads_total and
//     kube_iam_authz_mapping_last_reload_successful).
//   - A deleted file also keeps the last good snapshot, loudly. Clearing the
//     mapping (what aws-iam-authenticator's DynamicFile backend does) would
//     turn a deploy mistake or a ConfigMap volume hiccup into an outage for
//     every user, and is not how access is revoked: revoking means writing
//     a file without the entry (an empty mapping is `data: {}`), which is
//     applied like any other change.
//   - At start-up there is no last good snapshot, so Load fails and the
//     caller should exit with its error.
type Store struct {
	path, dir, base string
	name            string
	log             *zap.Logger
	metrics         *storeMetrics
	clock           func() time.Time
	debounce        time.Duration
	maxDelay        time.Duration
	resync          time.Duration
	maxBytes        int64
	strict          bool
	groupLimit      int
	// external is set for a store fed through Apply; path is then the
	// source's display name.
	external bool
	// after is time.After; tests replace it to drive the debounce timer.
	after func(time.Duration) <-chan time.Time

	current atomic.Pointer[Snapshot]
	status  atomic.Pointer[ReloadStatus]
	loadMu  sync.Mutex // serialises loads so that swaps happen in read order
}

// ReloadStatus is the outcome of the latest read of the mapping file, for
// health endpoints: whether the file on disk is the mapping in force, and
// if not, why and since when the last good one is kept.
type ReloadStatus struct {
	// Result is one of the Result* constants.
	Result string
	// At is when the file was read.
	At time.Time
	// Error is the failure, empty on success. It names the file and its
	// problems (never secrets: a mapping holds ARNs and names only).
	Error string
	// SHA256 is the content hash of the mapping in force ("" if none).
	SHA256 string
}

// OK reports whether the file on disk is the mapping in force.
func (r ReloadStatus) OK() bool { return r.Result == ResultSuccess || r.Result == ResultUnchanged }

// Status returns the outcome of the latest read of the file; the zero
// ReloadStatus before the first.
func (s *Store) Status() ReloadStatus {
	if st := s.status.Load(); st != nil {
		return *st
	}
	return ReloadStatus{}
}

func (s *Store) setStatus(result string, err error) {
	st := &ReloadStatus{Result: result, At: s.clock()}
	if err != nil {
		st.Error = err.Error()
	}
	if cur := s.current.Load(); cur != nil {
		st.SHA256 = cur.Hash()
	}
	s.status.Store(st)
}

// NewStore validates opts and builds a Store. It does not read the file:
// call Load (and exit on its error) or Run.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	abs := opts.Source
	if opts.Source == "" {
		var err error
		if abs, err = filepath.Abs(opts.Path); err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
	}
	s := &Store{
		path:       abs,
		external:   opts.Source != "",
		dir:        filepath.Dir(abs),
		base:       filepath.Base(abs),
		name:       opts.Name,
		log:        opts.Logger,
		clock:      opts.Now,
		debounce:   opts.Debounce,
		maxDelay:   opts.MaxDelay,
		resync:     opts.Resync,
		maxBytes:   opts.MaxFileBytes,
		strict:     opts.Strict,
		groupLimit: opts.GroupLimit,
		after:      time.After,
	}
	if s.name == "" {
		s.name = "aws-auth"
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.external {
		s.log = s.log.With(zap.String("mapping", s.name), zap.String("source", s.path))
	} else {
		s.log = s.log.With(zap.String("mapping", s.name), zap.String("path", s.path))
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.debounce == 0 {
		s.debounce = 250 * time.Millisecond
	}
	if s.maxDelay == 0 {
		s.maxDelay = 5 * time.Second
	}
	if s.resync == 0 {
		s.resync = time.Minute
	}
	if opts.Metrics != nil {
		if err := opts.Metrics.claim(s.name); err != nil {
			return nil, err
		}
		s.metrics = &storeMetrics{m: opts.Metrics, name: s.name}
	}
	return s, nil
}

// Current returns the mapping in force, or nil before the first successful
// Load. The snapshot must not be modified (it cannot be through its API).
func (s *Store) Current() *Snapshot { return s.current.Load() }

// Ready reports whether a mapping has been loaded; the server should report
// not-ready (gRPC health NOT_SERVING) until it is.
func (s *Store) Ready() bool { return s.current.Load() != nil }

// Name is the store's name.
func (s *Store) Name() string { return s.name }

// Load reads the file and swaps in its snapshot. On any failure it keeps the
// snapshot in force and returns the error (a *ParseError for an invalid
// file, an fs.ErrNotExist wrapper for a missing one).
func (s *Store) Load() error {
	_, err := s.reload()
	return err
}

func (s *Store) reload() (result string, err error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.external {
		return ResultReadError, fmt.Errorf("mapping: %s has no file to read; its source calls Apply", s.path)
	}
	data, err := s.readSettled()
	if err != nil {
		result := ResultReadError
		if errors.Is(err, fs.ErrNotExist) {
			result = ResultMissing
		}
		s.fail(result, err)
		return result, err
	}
	return s.apply(data)
}

// Apply parses data, content read by an external source (see
// StoreOptions.Source), and swaps it in with the same last-good, metrics
// and logging as a file reload. It returns the *ParseError of a file that
// is refused; the snapshot in force is then kept.
func (s *Store) Apply(data []byte) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	_, err := s.apply(data)
	return err
}

// Missing records that an external source's object is gone (err says how):
// the last good snapshot stays, loudly, as for a deleted file.
func (s *Store) Missing(err error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.fail(ResultMissing, err)
}

// fail records a read that produced nothing to parse. Called with loadMu.
func (s *Store) fail(result string, err error) {
	s.setStatus(result, err)
	cur := s.current.Load()
	msg := "cannot read the mapping file"
	switch {
	case s.external && result == ResultMissing:
		msg = "the mapping source is missing"
	case s.external:
		msg = "cannot read the mapping source"
	case result == ResultMissing:
		msg = "the mapping file is missing"
	}
	s.metrics.reload(result)
	s.logFailure(msg, cur, err)
}

// apply parses data and swaps it in. Called with loadMu.
func (s *Store) apply(data []byte) (result string, err error) {
	defer func() { s.setStatus(result, err) }()
	cur := s.current.Load()
	sum := sha256.Sum256(data)
	if cur != nil && cur.Hash() == hex.EncodeToString(sum[:]) {
		s.metrics.reload(ResultUnchanged)
		s.log.Debug("mapping unchanged", zap.String("sha256", cur.Hash()))
		return ResultUnchanged, nil
	}
	snap, err := ParseWith(data, ParseOptions{Strict: s.strict})
	if err != nil {
		s.metrics.reload(ResultInvalid)
		what := "the mapping file is invalid"
		if s.external {
			what = "the mapping is invalid"
		}
		s.logFailure(what, cur, err)
		if s.external {
			return ResultInvalid, fmt.Errorf("mapping %s: %w", s.path, err)
		}
		return ResultInvalid, fmt.Errorf("mapping file %s: %w", s.path, err)
	}
	s.current.Store(snap)
	s.metrics.reload(ResultSuccess)
	s.metrics.swapped(snap, float64(s.clock().UnixNano())/1e9)
	warnings := snap.warnings
	if s.groupLimit > 0 {
		warnings = append(slices.Clip(warnings), snap.GroupsOver(s.groupLimit)...)
	}
	c := snap.Counts()
	s.log.Info("mapping loaded",
		zap.String("sha256", snap.Hash()),
		zap.String("shape", string(snap.Shape())),
		zap.Int("roles", c.Roles), zap.Int("sso", c.SSO), zap.Int("users", c.Users), zap.Int("accounts", c.Accounts),
		zap.Strings("templates", snap.Templates()),
		zap.Int("dropped", c.Dropped),
		zap.Int("warnings", len(warnings)))
	// A dropped entry grants nothing: an operator must see it, at error
	// level, with the FILE:LINE an editor jumps to.
	for _, p := range snap.dropped {
		s.log.Error("mapping entry dropped; it grants nothing", zap.String("position", s.position(p)), zap.String("at", p.Path), zap.String("problem", p.Message), zap.String("divergence", p.Rule))
	}
	for _, w := range warnings {
		s.log.Warn("mapping warning", zap.String("position", s.position(w)), zap.Int("line", w.Line), zap.String("at", w.Path), zap.String("warning", w.Message))
	}
	return ResultSuccess, nil
}

// position is "FILE:LINE" (or FILE when the line is unknown).
func (s *Store) position(p Problem) string {
	if p.Line > 0 {
		return s.path + ":" + strconv.Itoa(p.Line)
	}
	return s.path
}

// readRetries and readRetryPause bound how long a failed read is retried
// before it counts as a failure. The kubelet's AtomicWriter swaps the
// ..data symlink and then deletes the old timestamped directory: a read
// that resolved ..data just before the swap can find its target gone
// (ENOENT) although a complete new file is already in place. Counting that
// as "missing" would flap the failure metric on every ConfigMap update.
const (
	readRetries    = 3
	readRetryPause = 20 * time.Millisecond
)

// readSettled reads the mapping file, retrying a failed read a few times
// with a short pause so that a read racing a symlink swap sees the new file.
func (s *Store) readSettled() ([]byte, error) {
	data, err := ReadFile(s.path, s.maxBytes)
	for i := 1; err != nil && i < readRetries; i++ {
		time.Sleep(readRetryPause)
		data, err = ReadFile(s.path, s.maxBytes)
	}
	return data, err
}

func (s *Store) logFailure(msg string, cur *Snapshot, err error) {
	fields := []zap.Field{zap.Error(err)}
	var perr *ParseError
	if errors.As(err, &perr) {
		problems := make([]string, len(perr.Problems))
		for i, p := range perr.Problems {
			problems[i] = p.String()
		}
		fields = []zap.Field{zap.Strings("problems", problems)}
	}
	if cur == nil {
		s.log.Error(msg+"; no mapping is loaded", fields...)
		return
	}
	fields = append(fields, zap.String("kept_sha256", cur.Hash()))
	s.log.Error(msg+"; keeping the last good mapping", fields...)
}
