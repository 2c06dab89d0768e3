package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/dataset/turbojpeg"
	"github.com/resomap/resomap/internal/testfixture"
)

// writePhotos writes n JPEG photos of w x h (smooth noise) into two class
// folders of dir.
func writePhotos(t testing.TB, dir string, n, w, h int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
	testfixture.Photos{N: n, W: w, H: h, Classes: []string{"cats", "dogs"}, Quality: 85,
		Name: func(i int) string { return fmt.Sprintf("p%04d", i) },
		Paint: func(img *image.RGBA, _, _ int) {
			base := [3]int{rng.IntN(200), rng.IntN(200), rng.IntN(200)}
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					p := img.Pix[y*img.Stride+x*4:]
					p[0], p[1], p[2], p[3] = byte(base[0]+x*40/w), byte(base[1]+y*40/h), byte(base[2]+rng.IntN(40)), 255
				}
			}
		}}.Write(t, dir)
}

// The child side of TestCacheBuildMemoryIsBounded: builds the cache of
// RESOMAP_MEM_DATA and prints its peak live Go heap (at every progress
// report) and peak RSS.
func TestMain(m *testing.M) {
	if dir := os.Getenv("RESOMAP_MEM_DATA"); dir != "" {
		dec, err := turbojpeg.Open()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var peakLive uint64
		progress := func(BuildProgress) {
			// What the build holds, images in flight included: a
			// collection first, so garbage and GC timing do not count.
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakLive = max(peakLive, ms.HeapAlloc)
		}
		ds, err := Open(dir, 224, Options{CacheDir: os.Getenv("RESOMAP_MEM_CACHE"), Augment: AugmentImageNet, JPEG: dec, Progress: progress})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		rss, _ := testfixture.PeakRSS(testfixture.Self)
		fmt.Println("images", ds.Train.N+ds.Val.N, "heap", peakLive, "rss", rss)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A cache is streamed to disk: building it for 4N images takes no more
// memory than for N (each build in a fresh process).
func TestCacheBuildMemoryIsBounded(t *testing.T) {
	testfixture.Long(t, "measures builds in helper processes")
	peak := func(n int) (heap, rss float64) {
		dir := t.TempDir()
		writePhotos(t, dir, n, 480, 360)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RESOMAP_MEM_DATA="+dir, "RESOMAP_MEM_CACHE="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var images int
		if _, serr := fmt.Sscanf(string(out), "images %d heap %g rss %g", &images, &heap, &rss); err != nil || serr != nil || images != n {
			t.Fatalf("build of %d images: %v %v\n%s", n, err, serr, out)
		}
		return heap, rss
	}
	// The 300 images more are 79 MB of cache at 224 px: held in memory,
	// they show. What the build holds is a window of images in flight
	// (made ahead of the writer), the same for any data set: the peaks may
	// differ by a tenth of that at most.
	h1, r1 := peak(100)
	h4, r4 := peak(400)
	t.Logf("peak live heap %.1f MB for 100 images, %.1f MB for 400; peak RSS %.1f / %.1f MB", h1/1e6, h4/1e6, r1/1e6, r4/1e6)
	more := 300 * 3 * float64(StoredSide(224)) * float64(StoredSide(224)) * 480 / 360
	if h4-h1 > more/10 || r4-r1 > more/10 {
		t.Errorf("memory grows with the data set: heap %.1f -> %.1f MB, RSS %.1f -> %.1f MB", h1/1e6, h4/1e6, r1/1e6, r4/1e6)
	}
}

// A JPEG that does not decode fails the build naming it, or is skipped and
// counted with skip_bad_images; a cache cut short is rebuilt the same.
func TestBadPhotosAndCutCaches(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writePhotos(t, dir, 20, 64, 48)
	good, _ := os.ReadFile(filepath.Join(dir, "cats", "p0000.jpg"))
	bad := filepath.Join(dir, "dogs", "truncated.jpg")
	os.WriteFile(bad, good[:len(good)/2], 0o644)
	opts := Options{CacheDir: cache, Augment: AugmentImageNet}
	if _, err := Open(dir, 32, opts); !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "truncated.jpg") {
		t.Fatalf("truncated JPEG: %v", err)
	}
	opts.SkipBadImages = true
	ds, err := Open(dir, 32, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Skipped != 1 || len(ds.SkippedFiles) != 1 || !strings.Contains(ds.SkippedFiles[0], "truncated.jpg") ||
		ds.Train.N+ds.Val.N != 20 || !ds.Train.Stored() || ds.NativeSide != 48 {
		t.Fatalf("skipped %d %v, %d+%d images, stored %v, native side %d", ds.Skipped, ds.SkippedFiles,
			ds.Train.N, ds.Val.N, ds.Train.Stored(), ds.NativeSide)
	}
	want := slices.Clone(ds.Train.photo(3).pix)
	path := ds.CachePath
	ds.Close()
	st, _ := os.Stat(path)
	os.Truncate(path, st.Size()-100)
	again, err := Open(dir, 32, opts)
	if err != nil {
		t.Fatalf("cut cache: %v", err)
	}
	defer again.Close()
	if !bytes.Equal(again.Train.photo(3).pix, want) {
		t.Error("rebuilt cache differs")
	}
}

// Trainings that need the same cache at once build it once (a file lock),
// and all get it.
func TestConcurrentOpensBuildOnce(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writePhotos(t, dir, 16, 64, 48)
	var mu sync.Mutex
	starts := 0
	opts := Options{CacheDir: cache, Augment: AugmentImageNet, Progress: func(p BuildProgress) {
		if p.Done == 0 {
			mu.Lock()
			starts++
			mu.Unlock()
		}
	}}
	var wg sync.WaitGroup
	sets := make([]*Set, 4)
	errs := make([]error, 4)
	for i := range sets {
		wg.Add(1)
		go func() { defer wg.Done(); sets[i], errs[i] = Open(dir, 32, opts) }()
	}
	wg.Wait()
	for i, s := range sets {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		defer s.Close()
		if s.CachePath != sets[0].CachePath || s.Train.N != sets[0].Train.N {
			t.Fatal("opens disagree")
		}
	}
	if starts != 1 {
		t.Fatalf("cache built %d times, want once", starts)
	}
}

// The ImageNet recipe's batches depend only on their step seeds: the same
// with one producer or several, from any starting step; crops and flips
// vary.
func TestImageNetBatchesAreSeededWhateverTheWorkers(t *testing.T) {
	s := storedSplit(24, 32)
	order := EpochOrder(s.N, 7)
	seedOf := func(step int) uint64 { return uint64(step) * 31 }
	collect := func(start, workers int) []Batch {
		var out []Batch
		for b := range Batches(context.Background(), s, order, 4, start, Augment{Flip: true, Workers: workers}, seedOf) {
			out = append(out, b)
		}
		return out
	}
	one, three, tail := collect(0, 1), collect(0, 3), collect(4, 2)
	if len(one) != 6 || len(three) != 6 || len(tail) != 2 {
		t.Fatalf("%d, %d, %d batches", len(one), len(three), len(tail))
	}
	for i := range one {
		if one[i].Step != i || three[i].Step != i || !bytes.Equal(one[i].Images, three[i].Images) {
			t.Fatalf("step %d differs between one and three producers", i)
		}
	}
	if !bytes.Equal(tail[0].Images, one[4].Images) || !bytes.Equal(tail[1].Images, one[5].Images) {
		t.Fatal("resumed batches differ")
	}
	if bytes.Equal(one[0].Images[:3*32*32], one[1].Images[:3*32*32]) {
		t.Fatal("no augmentation")
	}
}
