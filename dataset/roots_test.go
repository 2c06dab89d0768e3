package dataset

import (
	"errors"
	"testing"

	"github.com/resomap/resomap/internal/confine"
)

// A worker that names roots refuses a data folder outside them as bad
// input (not retried), before reading it; the built-in data set is the
// worker's own and always allowed.
func TestDataOutsideTheRootsIsRefused(t *testing.T) {
	inside, outside := t.TempDir(), t.TempDir()
	opts := Options{Roots: confine.Roots{inside}}
	for _, entry := range []func(string, Options) error{
		func(s string, o Options) error { _, err := SourceHash(s, o); return err },
		func(s string, o Options) error { _, err := NativeSide(s, o); return err },
		func(s string, o Options) error { _, err := Open(s, 16, o); return err },
		func(s string, o Options) error { _, err := DecodesPhotos(s, "", o); return err },
	} {
		err := entry(outside, opts)
		if !errors.Is(err, ErrBadData) || !errors.Is(err, confine.ErrOutside) {
			t.Errorf("outside the roots: %v, want ErrBadData and confine.ErrOutside", err)
		}
	}
	if _, err := resolve(inside, opts.Roots); err != nil {
		t.Errorf("inside the roots: %v", err)
	}
	if _, err := resolve(FashionMNIST, opts.Roots); err != nil && errors.Is(err, confine.ErrOutside) {
		t.Errorf("the built-in data set: %v", err)
	}
}
