package dataset

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeFolder(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 6; i++ {
		writeImage(t, filepath.Join(dir, "cats", "c"+string(rune('a'+i))+".png"), 16, 12, color.RGBA{200, uint8(i), 10, 255})
		writeImage(t, filepath.Join(dir, "dogs", "d"+string(rune('a'+i))+".png"), 12, 16, color.RGBA{10, uint8(i), 200, 255})
	}
}

// An image folder is named by its content: copied elsewhere (new paths,
// new mtimes) or touched, it keeps its identity and its cache; one changed
// image changes the identity, and the difference is named.
func TestImageFolderIdentityIsItsContent(t *testing.T) {
	dir := t.TempDir()
	writeFolder(t, dir)
	var memo HashMemo
	opts := Options{CacheDir: t.TempDir(), Hashes: &memo}
	orig, err := Describe(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, later, later)
		}
		return nil
	})
	copied := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-r", dir, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	for _, d := range []string{dir, copied} {
		id, err := Describe(d, opts)
		if err != nil {
			t.Fatal(err)
		}
		if id.Hash != orig.Hash {
			t.Errorf("%s: identity changed with mtimes or location", d)
		}
	}
	writeImage(t, filepath.Join(copied, "dogs", "dc.png"), 12, 16, color.RGBA{11, 2, 200, 255})
	changed, err := Describe(copied, opts)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Hash == orig.Hash {
		t.Fatal("a changed image kept the identity")
	}
	if diff := FirstDifference(orig, changed); !strings.HasPrefix(diff, "dogs/dc.png") {
		t.Errorf("first difference %q, want dogs/dc.png", diff)
	}
	if diff := FirstDifference(orig, orig); diff != "" {
		t.Errorf("identical identities differ at %q", diff)
	}
}

// An I/O error that may pass is not ErrBadData (so the activity retries);
// a missing file is.
func TestTransientReadErrorsAreNotBadData(t *testing.T) {
	dir := t.TempDir()
	writeFolder(t, dir)
	failing := Options{CacheDir: t.TempDir(), OpenFile: func(p string) (io.ReadCloser, error) {
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EIO}
	}}
	_, err := Open(dir, 8, failing)
	if err == nil || errors.Is(err, ErrBadData) || !errors.Is(err, syscall.EIO) {
		t.Errorf("EIO while reading: %v, want a retryable error", err)
	}
	os.Remove(filepath.Join(dir, "cats", "ca.png"))
	missing := Options{CacheDir: t.TempDir(), OpenFile: func(p string) (io.ReadCloser, error) {
		if strings.HasSuffix(p, "cb.png") {
			return nil, &os.PathError{Op: "open", Path: p, Err: syscall.ENOENT}
		}
		return os.Open(p)
	}}
	if _, err := Open(dir, 8, missing); !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "cb.png") {
		t.Errorf("missing file: %v, want ErrBadData naming it", err)
	}
}

// A truncated or damaged cache file is built again, not refused.
func TestDamagedCacheIsRebuilt(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writeFolder(t, dir)
	a, err := Open(dir, 8, Options{CacheDir: cache, Augment: AugmentCIFAR})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), a.Train.Image(3)...)
	path := a.CachePath
	a.Close()
	for _, damage := range []func(){
		func() { st, _ := os.Stat(path); os.Truncate(path, st.Size()/2) },
		func() { os.WriteFile(path, []byte("not a cache"), 0o644) },
	} {
		damage()
		b, err := Open(dir, 8, Options{CacheDir: cache, Augment: AugmentCIFAR})
		if err != nil {
			t.Fatalf("damaged cache: %v", err)
		}
		if string(b.Train.Image(3)) != string(want) {
			t.Error("rebuilt cache differs")
		}
		b.Close()
	}
}

// The native size of an image folder is its training images' median
// shorter side; of IDX data, its image size.
func TestNativeSide(t *testing.T) {
	dir := t.TempDir()
	for i, size := range [][2]int{{40, 30}, {50, 60}, {20, 25}, {64, 48}, {30, 90}} {
		writeImage(t, filepath.Join(dir, []string{"a", "b"}[i%2], fmt.Sprintf("%d.png", i)), size[0], size[1], color.White)
	}
	if n, err := NativeSide(dir, Options{ValFraction: 0.01}); err != nil || n != 30 {
		t.Fatalf("folder: %d, %v; want 30", n, err)
	}
	idx := t.TempDir()
	writeIDX(t, idx, false, 8, 12, 0)
	if n, err := NativeSide(idx, Options{}); err != nil || n != 12 {
		t.Fatalf("IDX: %d, %v; want 12", n, err)
	}
}
