//go:build !unix

package app

import (
	"fmt"
	"io/fs"
	"os"
)

func openNoFollow(path string) (*os.File, error) { return os.Open(path) }

// checkPrivate on systems without Unix permissions checks what Go reports.
func checkPrivate(fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("permissions %04o are not private", perm)
	}
	return nil
}
