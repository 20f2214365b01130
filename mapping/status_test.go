package mapping

import (
	"os"
	"strings"
	"testing"
)

// TestStoreStatus: Status says whether the file on disk is the mapping in force,
// and if not why, and which mapping is kept.
func TestStoreStatus(t *testing.T) {
	f := newStoreFixture(t, versioned(1), nil)
	if st := f.store.Status(); st.Result != "" || st.OK() {
		t.Fatalf("before any load: %+v", st)
	}
	mustLoad(t, f)
	good := f.store.Current().Hash()
	tests := []struct {
		name       string
		change     func()
		wantResult string
		wantError  string
		wantSHA    func() string
	}{
		{"first load", func() {}, ResultUnchanged, "", func() string { return good }},
		{"corrupt", func() { writeFile(t, f.path, corrupt) }, ResultInvalid, "mapping file", func() string { return good }},
		{"deleted", func() { _ = os.Remove(f.path) }, ResultMissing, "does not exist", func() string { return good }},
		{"a directory", func() { _ = os.Mkdir(f.path, 0o700) }, ResultReadError, "not a regular file", func() string { return good }},
		{"fixed", func() { _ = os.Remove(f.path); writeFile(t, f.path, versioned(2)) }, ResultSuccess, "", func() string { return f.store.Current().Hash() }},
	}
	for _, tc := range tests {
		tc.change()
		_ = f.store.Load()
		st := f.store.Status()
		if st.Result != tc.wantResult || st.OK() != (tc.wantError == "") || st.SHA256 != tc.wantSHA() {
			t.Errorf("%s: status %+v, want result %s, sha %s", tc.name, st, tc.wantResult, tc.wantSHA())
		}
		if tc.wantError != "" && !strings.Contains(st.Error, tc.wantError) {
			t.Errorf("%s: error %q, want it to mention %q", tc.name, st.Error, tc.wantError)
		}
		if st.At.IsZero() {
			t.Errorf("%s: no time", tc.name)
		}
	}
	if f.store.Current().Hash() == good {
		t.Error("the fixed file was not picked up")
	}
}
