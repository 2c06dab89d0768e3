// Package confine keeps the local paths a sweep spec names (its data
// folder, its weights file) inside the folders a worker allows. A spec
// comes from anyone who can start a workflow; without roots a worker
// digests, lists and reads whatever path it names.
package confine

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrOutside marks a path outside every allowed root.
var ErrOutside = errors.New("outside the folders this worker allows")

// Roots are the folders local paths must lie in; none allows any path.
type Roots []string

// Parse reads a list of folders separated by the OS's list separator (':'
// on Linux, as in PATH) or commas; empty entries are dropped.
func Parse(list string) Roots {
	var r Roots
	for _, f := range strings.FieldsFunc(list, func(c rune) bool { return c == filepath.ListSeparator || c == ',' }) {
		if f = strings.TrimSpace(f); f != "" {
			r = append(r, f)
		}
	}
	return r
}

// Check returns nil when p lies in one of the roots (or there are none).
// Both sides are compared with every symbolic link resolved, so a link
// inside a root cannot lead out of it; a path that does not exist is
// refused with the reason (it cannot be resolved, so it cannot be shown
// to lie inside).
func (r Roots) Check(p string) error {
	if len(r) == 0 {
		return nil
	}
	real, err := resolve(p)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrOutside, p, err)
	}
	for _, root := range r {
		rr, err := resolve(root)
		if err != nil {
			continue // a root that is not there holds nothing
		}
		if real == rr || strings.HasPrefix(real, strings.TrimSuffix(rr, string(filepath.Separator))+string(filepath.Separator)) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (allowed: %s)", ErrOutside, p, strings.Join(r, ", "))
}

func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
