// Package atomicfile writes files so that a crash never leaves a
// half-written file under a real name: data goes to a synced temporary file
// that is then renamed (or hard-linked) into place.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write stores r at path atomically, replacing any existing file.
func Write(path string, r io.Reader) error { return write(path, r, os.Rename) }

// Create stores r at path only if nothing is there yet; link(2) fails with
// fs.ErrExist when the name is taken, so of racing writers exactly one wins.
func Create(path string, r io.Reader) error { return write(path, r, os.Link) }

func write(path string, r io.Reader, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := place(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
