package mapping

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReadFile reads a mapping file, refusing anything larger than maxBytes
// (MaxFileBytes when 0) or that is not a regular file after following
// symlinks (a ConfigMap volume's file is a symlink into ..data/).
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 || maxBytes > MaxFileBytes {
		maxBytes = MaxFileBytes
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("mapping file %s does not exist: %w", path, err)
		}
		return nil, fmt.Errorf("opening mapping file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mapping file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("mapping file %s is not a regular file (%s)", path, info.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading mapping file %s: %w", path, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("mapping file %s is larger than %d bytes", path, maxBytes)
	}
	return data, nil
}

// LoadFile reads and parses a mapping file: the one-shot form of Store.Load
// for tools such as `mapping check` and `map`.
func LoadFile(path string) (*Snapshot, error) {
	data, err := ReadFile(path, 0)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}
