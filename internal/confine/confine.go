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

// Resolve returns p with every symbolic link resolved when it lies in one
// of the roots, comparing both sides resolved (a link inside a root
// cannot lead out of it); callers open what it returns, not p, so a link
// swapped after the check leads nowhere new. With no roots it returns p.
//
// A path outside every root is refused alike whether it exists or not (a
// spec cannot probe the machine's files); one that lies inside a root but
// cannot be resolved says why (a typo in an allowed folder).
func (r Roots) Resolve(p string) (string, error) {
	if len(r) == 0 {
		return p, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrOutside, p)
	}
	real, rerr := filepath.EvalSymlinks(abs)
	for _, root := range r {
		rr, err := resolve(root)
		if err != nil {
			continue // a root that is not there holds nothing
		}
		if rerr == nil && within(real, rr) {
			return real, nil
		}
		if rerr != nil && within(abs, rr) {
			return "", rerr
		}
	}
	return "", fmt.Errorf("%w: %s (allowed: %s)", ErrOutside, p, strings.Join(r, ", "))
}

// within says whether path p lies in (or is) folder dir, both clean.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
