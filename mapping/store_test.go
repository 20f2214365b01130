package mapping

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// versioned is a valid mapping whose admin role maps to a username and two
// groups that all carry the version, so a reader can tell a torn read.
func versioned(v int) string {
	return fmt.Sprintf("mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/Admin\n    username: admin-v%d\n    groups: [a-v%d, b-v%d]\n  - rolearn: arn:aws:iam::111122223333:role/Stable\n    username: stable\n", v, v, v)
}

const corrupt = "mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/Admin\n    username: [\n"

type storeFixture struct {
	dir, path string
	store     *Store
	metrics   *Metrics
	logs      *observer.ObservedLogs
}

func newStoreFixture(t *testing.T, initial string, tweak func(*StoreOptions)) *storeFixture {
	t.Helper()
	dir := t.TempDir()
	f := &storeFixture{dir: dir, path: filepath.Join(dir, "aws-auth.yaml")}
	if initial != "" {
		writeFile(t, f.path, initial)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	f.metrics, f.logs = m, logs
	opts := StoreOptions{Path: f.path, Name: "test", Logger: zap.New(core), Metrics: m, Debounce: 20 * time.Millisecond, Resync: -1}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.store = s
	return f
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *storeFixture) reloads(result string) float64 {
	return testutil.ToFloat64(f.metrics.reloads.WithLabelValues("test", result))
}

// run starts the watcher and stops it when the test ends.
func (f *storeFixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.store.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	// Run re-reads once after its watch is in place; once that is counted
	// the watch is live.
	waitFor(t, "the watcher to start", func() bool { return f.reloads(ResultUnchanged)+f.reloads(ResultSuccess) >= 2 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *storeFixture) username(t *testing.T) string {
	t.Helper()
	snap := f.store.Current()
	if snap == nil {
		return ""
	}
	m, err := snap.Lookup(identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Admin", AccountID: "111122223333"})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return m.entry.username.raw
}

func waitForVersion(t *testing.T, f *storeFixture, v int) {
	t.Helper()
	want := fmt.Sprintf("admin-v%d", v)
	waitFor(t, want, func() bool { return f.username(t) == want })
}

// atomicWrite replays the kubelet AtomicWriter: payload into a new
// timestamped directory, a ..data_tmp symlink to it renamed over ..data,
// the visible file a symlink into ..data (created once), and the old
// directory removed.
func atomicWrite(t *testing.T, dir, file, content string) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts, err := os.MkdirTemp(dir, "..2026_11_27_00_00_00.")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ts, file), content)
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	visible := filepath.Join(dir, file)
	if _, err := os.Lstat(visible); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..data", file), visible); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreStartup(t *testing.T) {
	tests := map[string]struct {
		content   string // "" means no file
		wantErr   error
		wantInErr string
	}{
		"missing file":  {wantErr: fs.ErrNotExist, wantInErr: "does not exist"},
		"invalid file":  {content: corrupt, wantErr: ErrInvalid, wantInErr: "line 3"},
		"empty file":    {content: "\n", wantErr: ErrInvalid, wantInErr: "the file is empty"},
		"valid mapping": {content: versioned(1)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newStoreFixture(t, tc.content, nil)
			err := f.store.Load()
			if tc.wantErr == nil {
				if err != nil || !f.store.Ready() {
					t.Fatalf("Load() = %v, Ready() = %v; want nil, true", err, f.store.Ready())
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("Load() = %v, want %v containing %q", err, tc.wantErr, tc.wantInErr)
			}
			if f.store.Ready() || f.store.Current() != nil {
				t.Error("store is ready after a failed first load")
			}
			// Run is also a start-up check.
			if err := f.store.Run(context.Background()); !errors.Is(err, tc.wantErr) {
				t.Errorf("Run() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestStoreReload(t *testing.T) {
	t.Run("in-place write", func(t *testing.T) {
		f := newStoreFixture(t, versioned(1), nil)
		mustLoad(t, f)
		f.run(t)
		writeFile(t, f.path, versioned(2))
		waitForVersion(t, f, 2)
	})
	t.Run("rename-replace", func(t *testing.T) {
		f := newStoreFixture(t, versioned(1), nil)
		mustLoad(t, f)
		f.run(t)
		tmp := filepath.Join(f.dir, ".aws-auth.yaml.swp")
		writeFile(t, tmp, versioned(2))
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
		waitForVersion(t, f, 2)
	})
	t.Run("kubelet ..data symlink swap", func(t *testing.T) {
		dir := t.TempDir()
		atomicWrite(t, dir, "aws-auth.yaml", versioned(1))
		f := newStoreFixture(t, "", func(o *StoreOptions) { o.Path = filepath.Join(dir, "aws-auth.yaml") })
		f.dir = dir
		mustLoad(t, f)
		f.run(t)
		for v := 2; v <= 4; v++ {
			atomicWrite(t, dir, "aws-auth.yaml", versioned(v))
			waitForVersion(t, f, v)
		}
		if got := f.reloads(ResultInvalid) + f.reloads(ResultMissing) + f.reloads(ResultReadError); got != 0 {
			t.Errorf("failed reloads = %v during atomic swaps, want 0", got)
		}
	})
	t.Run("corrupt then fixed", func(t *testing.T) {
		f := newStoreFixture(t, versioned(1), nil)
		mustLoad(t, f)
		f.run(t)
		kept := f.store.Current().Hash()
		writeFile(t, f.path, corrupt)
		waitFor(t, "the invalid reload to be counted", func() bool { return f.reloads(ResultInvalid) >= 1 })
		if f.store.Current().Hash() != kept || f.username(t) != "admin-v1" {
			t.Fatalf("an invalid file replaced the mapping")
		}
		if got := testutil.ToFloat64(f.metrics.lastReloadOK.WithLabelValues("test")); got != 0 {
			t.Errorf("last_reload_successful = %v after an invalid file, want 0", got)
		}
		logged := f.logs.FilterMessage("the mapping file is invalid; keeping the last good mapping").All()
		if len(logged) == 0 {
			t.Fatalf("no error log for the invalid file; logs: %v", f.logs.All())
		}
		problems, _ := logged[0].ContextMap()["problems"].([]any)
		if len(problems) != 1 || !strings.Contains(fmt.Sprint(problems[0]), "line 3: mapRoles: YAML syntax error") {
			t.Errorf("logged problems = %v, want the syntax error with its line", problems)
		}
		writeFile(t, f.path, versioned(2))
		waitForVersion(t, f, 2)
		if got := testutil.ToFloat64(f.metrics.lastReloadOK.WithLabelValues("test")); got != 1 {
			t.Errorf("last_reload_successful = %v after the fix, want 1", got)
		}
	})
	t.Run("deleted then re-created", func(t *testing.T) {
		f := newStoreFixture(t, versioned(1), nil)
		mustLoad(t, f)
		f.run(t)
		if err := os.Remove(f.path); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the missing file to be counted", func() bool { return f.reloads(ResultMissing) >= 1 })
		if f.username(t) != "admin-v1" {
			t.Fatal("deleting the file dropped the mapping")
		}
		if len(f.logs.FilterMessage("the mapping file is missing; keeping the last good mapping").All()) == 0 {
			t.Error("deletion was not logged loudly")
		}
		writeFile(t, f.path, versioned(2))
		waitForVersion(t, f, 2)
	})
}

func mustLoad(t *testing.T, f *storeFixture) {
	t.Helper()
	if err := f.store.Load(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreMetrics(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := newStoreFixture(t, versioned(1), func(o *StoreOptions) { o.Now = func() time.Time { return now } })
	mustLoad(t, f)
	mustLoad(t, f) // unchanged
	writeFile(t, f.path, corrupt)
	if err := f.store.Load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load(corrupt) = %v", err)
	}
	tests := map[string]struct {
		got, want float64
	}{
		"success":        {f.reloads(ResultSuccess), 1},
		"unchanged":      {f.reloads(ResultUnchanged), 1},
		"invalid":        {f.reloads(ResultInvalid), 1},
		"last success":   {testutil.ToFloat64(f.metrics.lastSuccess.WithLabelValues("test")), 1_800_000_000},
		"role entries":   {testutil.ToFloat64(f.metrics.entries.WithLabelValues("test", "role")), 2},
		"user entries":   {testutil.ToFloat64(f.metrics.entries.WithLabelValues("test", "user")), 0},
		"info hash":      {testutil.ToFloat64(f.metrics.info.WithLabelValues("test", f.store.Current().Hash())), 1},
		"info one hash":  {float64(testutil.CollectAndCount(f.metrics.info)), 1},
		"last reload ok": {testutil.ToFloat64(f.metrics.lastReloadOK.WithLabelValues("test")), 0},
	}
	for name, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
	if _, err := NewStore(StoreOptions{Path: f.path, Name: "test", Metrics: f.metrics}); err == nil {
		t.Error("a second store with the same name on the same metrics was accepted")
	}
	// A second mapping (another cluster) reports under its own name.
	other := filepath.Join(f.dir, "other.yaml")
	writeFile(t, other, "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/u\n    username: u\n")
	s2, err := NewStore(StoreOptions{Path: other, Name: "other", Metrics: f.metrics})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Load(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.metrics.entries.WithLabelValues("other", "user")); got != 1 {
		t.Errorf("other store's user entries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.metrics.entries.WithLabelValues("test", "role")); got != 2 {
		t.Errorf("first store's role entries = %v after the second loaded, want 2", got)
	}
	if got := testutil.CollectAndCount(f.metrics.info); got != 2 {
		t.Errorf("info series = %d, want one per store", got)
	}
}

// TestStoreGroupLimit: an entry over the group limit loads (its requests are
// refused later, in authz/check) and every load logs it as a warning with
// its position; without a limit nothing is said.
func TestStoreGroupLimit(t *testing.T) {
	const file = "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/ok\n    username: ok\n    groups: [a, b]\n" +
		"  - userarn: arn:aws:iam::111122223333:user/many\n    username: many\n    groups: [a, b, c]\n"
	for name, tc := range map[string]struct {
		limit        int
		wantWarnings []string
	}{
		"limit 2":  {limit: 2, wantWarnings: []string{"mapUsers[1]: maps to 3 groups, more than the 2 a request can carry: every principal this entry maps is refused (403), never truncated"}},
		"limit 3":  {limit: 3},
		"no limit": {},
	} {
		t.Run(name, func(t *testing.T) {
			f := newStoreFixture(t, file, func(o *StoreOptions) { o.GroupLimit = tc.limit })
			if err := f.store.Load(); err != nil {
				t.Fatal(err)
			}
			if c := f.store.Current().Counts(); c.Users != 2 || c.Dropped != 0 {
				t.Errorf("counts %+v, want both users loaded", c)
			}
			var got []string
			for _, e := range f.logs.FilterMessage("mapping warning").All() {
				m := e.ContextMap()
				got = append(got, fmt.Sprint(m["at"], ": ", m["warning"]))
				if m["position"] != f.path+":5" {
					t.Errorf("position %v, want %s:5", m["position"], f.path)
				}
			}
			if !reflect.DeepEqual(got, tc.wantWarnings) {
				t.Errorf("warnings %q, want %q", got, tc.wantWarnings)
			}
			if loaded := f.logs.FilterMessage("mapping loaded").All(); len(loaded) != 1 || loaded[0].ContextMap()["warnings"] != int64(len(tc.wantWarnings)) {
				t.Errorf("mapping loaded: %v, want warnings=%d", loaded, len(tc.wantWarnings))
			}
		})
	}
}

func TestStoreOptionsValidate(t *testing.T) {
	err := StoreOptions{Debounce: -1, MaxDelay: -1, MaxFileBytes: MaxFileBytes + 1, GroupLimit: -1}.Validate()
	for _, want := range []string{"Path is required", "Debounce is negative", "MaxDelay is negative", "MaxFileBytes must be", "GroupLimit is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %q", err, want)
		}
	}
}

// TestStoreDebounce drives the debounce timer by hand: a burst of writes
// arms it repeatedly, nothing is reloaded until it fires, and then once.
func TestStoreDebounce(t *testing.T) {
	var mu sync.Mutex
	var timers []chan time.Time
	f := newStoreFixture(t, versioned(1), nil)
	f.store.after = func(time.Duration) <-chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		c := make(chan time.Time, 1)
		timers = append(timers, c)
		return c
	}
	mustLoad(t, f)
	f.run(t)
	for v := 2; v <= 6; v++ {
		writeFile(t, f.path, versioned(v))
	}
	waitFor(t, "the writes to arm the timer", func() bool { mu.Lock(); defer mu.Unlock(); return len(timers) >= 1 })
	time.Sleep(200 * time.Millisecond) // let every event of the burst arrive
	if got := f.username(t); got != "admin-v1" {
		t.Fatalf("reloaded to %s before the debounce timer fired", got)
	}
	before := f.reloads(ResultSuccess)
	mu.Lock()
	last := timers[len(timers)-1]
	armed := len(timers)
	mu.Unlock()
	last <- time.Now()
	waitForVersion(t, f, 6)
	time.Sleep(50 * time.Millisecond)
	if got := f.reloads(ResultSuccess) - before; got != 1 {
		t.Errorf("%v reloads for a burst that armed the timer %d times, want 1", got, armed)
	}
}

// TestStoreConcurrentSwaps runs readers against 100 swaps (go test -race):
// every lookup succeeds and every user is internally consistent.
func TestStoreConcurrentSwaps(t *testing.T) {
	f := newStoreFixture(t, versioned(0), nil)
	mustLoad(t, f)
	mapper, err := NewMapper(MapperOptions{Snapshots: f.store})
	if err != nil {
		t.Fatal(err)
	}
	admin := identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Admin", AccountID: "111122223333"}
	stable := identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Stable", AccountID: "111122223333"}
	var stop atomic.Bool
	var lookups atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				u, err := mapper.Map(context.Background(), admin)
				if err != nil {
					errs <- fmt.Errorf("Map(admin): %w", err)
					return
				}
				var v int
				if _, err := fmt.Sscanf(u.Username, "admin-v%d", &v); err != nil || len(u.Groups) != 2 ||
					u.Groups[0] != fmt.Sprintf("a-v%d", v) || u.Groups[1] != fmt.Sprintf("b-v%d", v) {
					errs <- fmt.Errorf("torn read: %+v", u)
					return
				}
				if u, err := mapper.Map(context.Background(), stable); err != nil || u.Username != "stable" {
					errs <- fmt.Errorf("Map(stable) = %+v, %v", u, err)
					return
				}
				lookups.Add(1)
			}
		}()
	}
	for v := 1; v <= 100; v++ {
		writeFile(t, f.path, versioned(v))
		mustLoad(t, f)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.reloads(ResultSuccess); got != 101 {
		t.Errorf("swaps = %v, want 101", got)
	}
	if lookups.Load() == 0 {
		t.Error("readers made no lookups")
	}
}

// TestStoreConcurrentKubeletSwaps replays 100 kubelet AtomicWriter updates
// under concurrent lookups, through the watcher (anchors C.15): no lookup
// fails, no reload sees a missing or half-written file, the last one wins.
func TestStoreConcurrentKubeletSwaps(t *testing.T) {
	dir := t.TempDir()
	atomicWrite(t, dir, "aws-auth.yaml", versioned(0))
	f := newStoreFixture(t, "", func(o *StoreOptions) {
		o.Path = filepath.Join(dir, "aws-auth.yaml")
		o.Debounce = time.Millisecond
	})
	mustLoad(t, f)
	f.run(t)
	stable := identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Stable", AccountID: "111122223333"}
	var stop atomic.Bool
	var wg sync.WaitGroup
	failures := make(chan error, 4)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := f.store.Current().Lookup(stable); err != nil {
					failures <- err
					return
				}
			}
		}()
	}
	for v := 1; v <= 100; v++ {
		atomicWrite(t, dir, "aws-auth.yaml", versioned(v))
	}
	waitForVersion(t, f, 100)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("lookup failed during swaps: %v", err)
	}
	if got := f.reloads(ResultInvalid) + f.reloads(ResultMissing) + f.reloads(ResultReadError); got != 0 {
		t.Errorf("%v reloads failed during atomic swaps, want 0", got)
	}
}
