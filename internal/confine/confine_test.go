package confine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRootsConfinePathsLinksIncluded(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "data")
	sibling := filepath.Join(base, "data-secret") // shares the root's prefix
	for _, d := range []string{filepath.Join(root, "cifar"), sibling} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(sibling, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "cifar"), filepath.Join(sibling, "in")); err != nil {
		t.Fatal(err)
	}
	roots := Parse(root + ",  ," + filepath.Join(base, "missing"))
	if len(roots) != 2 {
		t.Fatalf("Parse: %q", roots)
	}
	for p, want := range map[string]bool{
		root:                         true,
		filepath.Join(root, "cifar"): true,
		filepath.Join(root, "cifar", "..", "cifar"): true,
		filepath.Join(sibling, "in"):                true, // a link into the root: what it reads is inside
		sibling:                                     false,
		filepath.Join(root, "escape"):               false,
		filepath.Join(root, "..", "data-secret"):    false,
		"/etc/passwd":                               false,
	} {
		err := check(roots, p)
		if (err == nil) != want {
			t.Errorf("Check(%s) = %v, want allowed %v", p, err, want)
		}
		if err != nil && !errors.Is(err, ErrOutside) {
			t.Errorf("Check(%s): %v is not ErrOutside", p, err)
		}
	}
	if err := check(nil, "/etc/passwd"); err != nil {
		t.Errorf("no roots: %v", err)
	}
	// Inside a root, a missing path says so; outside, it is refused as any
	// other path is (no probing of the machine's files).
	if err := check(roots, filepath.Join(root, "nothing-here")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing inside: %v, want not-exist", err)
	}
	if err := check(roots, filepath.Join(sibling, "nothing-here")); !errors.Is(err, ErrOutside) || errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing outside: %v, want ErrOutside only", err)
	}
	// Callers open the resolved path: a link into the root is followed once.
	got, err := roots.Resolve(filepath.Join(sibling, "in"))
	want, _ := filepath.EvalSymlinks(filepath.Join(root, "cifar"))
	if err != nil || got != want {
		t.Errorf("Resolve through a link: %q, %v; want %q", got, err, want)
	}
}

// check is Resolve without the path.
func check(r Roots, p string) error {
	_, err := r.Resolve(p)
	return err
}
