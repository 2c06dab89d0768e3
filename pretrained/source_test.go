package pretrained_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resomap/resomap/pretrained"
)

// torchvision:resnet18 is torchvision's resnet18-f37072fd.pth, served here
// by a local server (no internet): its content must start the SHA-256 its
// name carries, a corrupted download is refused and not cached, and a good
// one is downloaded once.
func TestTorchvisionNameIsDownloadedOnceAndChecked(t *testing.T) {
	var body atomic.Value
	body.Store([]byte("corrupted"))
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/models/resnet18-f37072fd.pth" {
			http.NotFound(w, r)
			return
		}
		gets.Add(1)
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	cache := t.TempDir()
	f := pretrained.Fetcher{CacheDir: cache, Base: srv.URL + "/models/"}
	ctx := context.Background()
	if _, err := f.Fetch(ctx, "torchvision:resnet18"); !errors.Is(err, pretrained.ErrChecksum) {
		t.Fatalf("a corrupted download: %v, want ErrChecksum", err)
	}
	if found, _ := filepath.Glob(filepath.Join(cache, "*", "resnet18-f37072fd.pth")); len(found) > 0 {
		t.Fatal("a corrupted download was cached")
	}
	// Content whose SHA-256 starts f37072fd cannot be made here; a file
	// named for its own checksum stands in for torchvision's, served at
	// the URL the name maps to.
	good := []byte("weights that match their name")
	sum := sha256.Sum256(good)
	name := "resnet18-" + hex.EncodeToString(sum[:])[:8] + ".pth"
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/models/"+name {
			http.NotFound(w, r)
			return
		}
		gets.Add(1)
		w.Write(good)
	})
	gets.Store(0)
	var cached string
	for range 2 {
		got, err := f.Fetch(ctx, srv.URL+"/models/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if got.SHA256 != hex.EncodeToString(sum[:]) || filepath.Dir(filepath.Dir(got.Path)) != cache {
			t.Fatalf("fetched %+v", got)
		}
		cached = got.Path
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d downloads, want one (then the cache)", n)
	}
	// A cached file that went bad is downloaded again.
	os.WriteFile(cached, []byte("bit rot"), 0o644)
	if _, err := f.Fetch(ctx, srv.URL+"/models/"+name); err != nil || gets.Load() != 2 {
		t.Errorf("a bad cached file: %v after %d downloads", err, gets.Load())
	}
}

func TestFetchErrors(t *testing.T) {
	f := pretrained.Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	if _, err := f.Fetch(ctx, "torchvision:alexnet"); err == nil || !strings.Contains(err.Error(), "resnet18") {
		t.Errorf("an unknown torchvision name: %v", err)
	}
	if _, err := f.Fetch(ctx, filepath.Join(t.TempDir(), "missing.pth")); err == nil {
		t.Error("a missing file was accepted")
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := f.Fetch(ctx, srv.URL+"/w.pth"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404: %v", err)
	}
	// A local file named for a checksum it does not have.
	p := filepath.Join(t.TempDir(), "resnet18-f37072fd.pth")
	os.WriteFile(p, []byte("not resnet18"), 0o644)
	if _, err := f.Fetch(ctx, p); !errors.Is(err, pretrained.ErrChecksum) {
		t.Errorf("a misnamed local file: %v", err)
	}
	// Not a state dict.
	q := filepath.Join(t.TempDir(), "w.pth")
	os.WriteFile(q, []byte("hello"), 0o644)
	if _, err := pretrained.Read(q); !errors.Is(err, pretrained.ErrFormat) {
		t.Errorf("a text file read as weights: %v", err)
	}
}

// Two URLs that end in the same file name are two files: each fetch gives
// its own URL's content and SHA-256 (the cache was keyed by the name, and
// the second sweep trained from the first one's weights under its name).
func TestURLsWithTheSameFileNameAreCachedApart(t *testing.T) {
	bodies := map[string][]byte{"/a/model.safetensors": []byte("weights of a"), "/b/model.safetensors": []byte("weights of b")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	f := pretrained.Fetcher{CacheDir: t.TempDir()}
	for range 2 { // the second round from the cache
		for p, body := range bodies {
			got, err := f.Fetch(context.Background(), srv.URL+p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			b, _ := os.ReadFile(got.Path)
			if got.SHA256 != hex.EncodeToString(sum[:]) || string(b) != string(body) {
				t.Errorf("%s: fetched %q (sha256 %s), want %q", p, b, got.SHA256, body)
			}
		}
	}
}
