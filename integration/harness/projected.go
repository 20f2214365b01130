package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// ProjectedDir is a directory laid out like a Kubernetes ConfigMap, Secret or
// projected service-account token volume: each visible file NAME is a symlink to
// ..data/NAME, ..data is a symlink to a hidden timestamped directory, and an update
// writes a new hidden directory and swaps ..data with one rename (kubelet
// AtomicWriter). A watcher on the file itself misses such updates, which is why the
// product watches the directory; tests use this type to update files the way a real
// cluster does.
type ProjectedDir struct {
	// Dir is the volume's mount point.
	Dir string
	// generation numbers the hidden directories (the kubelet uses timestamps; a
	// counter keeps two updates within one clock tick apart).
	generation atomic.Uint64
}

// NewProjectedDir makes a projected directory in the test's temp dir holding files.
func NewProjectedDir(t testing.TB, files map[string][]byte) *ProjectedDir {
	t.Helper()
	p := &ProjectedDir{Dir: filepath.Join(t.TempDir(), "volume")}
	if err := os.Mkdir(p.Dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	p.Update(t, files)
	return p
}

// Path returns the visible path of file name.
func (p *ProjectedDir) Path(name string) string { return filepath.Join(p.Dir, name) }

// Update atomically replaces the volume's content with files, as the kubelet does
// when the ConfigMap or token changes. Names must be plain file names.
func (p *ProjectedDir) Update(t testing.TB, files map[string][]byte) {
	t.Helper()
	if err := p.update(files); err != nil {
		t.Fatalf("harness: update %s: %v", p.Dir, err)
	}
}

func (p *ProjectedDir) update(files map[string][]byte) error {
	gen := fmt.Sprintf("..gen_%06d", p.generation.Add(1))
	genDir := filepath.Join(p.Dir, gen)
	if err := os.Mkdir(genDir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if name != filepath.Base(name) || name == "" || name[0] == '.' {
			return fmt.Errorf("file name %q is not a plain visible name", name)
		}
		if err := os.WriteFile(filepath.Join(genDir, name), data, 0o644); err != nil {
			return err
		}
	}
	// Swap ..data in one rename: readers see the old or the new generation, never a mix.
	tmpLink := filepath.Join(p.Dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(gen, tmpLink); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(p.Dir, "..data"))
	if err := os.Rename(tmpLink, filepath.Join(p.Dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(p.Dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	if old != "" && old != gen {
		return os.RemoveAll(filepath.Join(p.Dir, old))
	}
	return nil
}
