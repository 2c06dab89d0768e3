// Package dataset reads image classification data (MNIST-style IDX files or
// an image folder), resizes it once per resolution with an antialiasing
// filter into a compact uint8 cache file that is memory-mapped afterwards,
// and serves seeded, augmented batches ahead of the training loop.
package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/resomap/resomap/internal/confine"
	"github.com/resomap/resomap/internal/errkind"
)

// ErrBadData marks missing or malformed input data.
var ErrBadData = errkind.New(errkind.Invalid, "bad data")

// FashionMNISTDir is where Debian's dataset-fashion-mnist installs the data.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// cacheVersion changes whenever the cache's bytes would change for the same
// source (resize filter, layout), so old caches are never reused.
const cacheVersion = "rmds-3"

// Options tune how a source becomes a data set.
type Options struct {
	CacheDir string // default: $XDG_CACHE_HOME/resomap or ~/.cache/resomap
	// ValFraction is held out for validation when an image folder has no
	// val/ sub-folder (seeded by SplitSeed). Default 0.1.
	ValFraction float64
	SplitSeed   uint64
	// Hashes, if set, memoises content hashes across calls.
	Hashes *HashMemo
	// OpenFile opens image files (nil: os.Open); tests inject I/O errors.
	OpenFile func(path string) (io.ReadCloser, error)
	// JPEG decodes JPEG photos for the ImageNet recipe (nil: Go's decoder,
	// several times slower; package turbojpeg is the fast one).
	JPEG JPEGDecoder
	// Workers make cache images in parallel (default: GOMAXPROCS).
	Workers int
	// Progress hears how a cache build advances (nil: nothing).
	Progress func(BuildProgress)
	// Roots, if any, are the folders a data source must lie in (the
	// built-in Fashion-MNIST apart): a spec names any path.
	Roots confine.Roots

	// The recipe: what the cache stores. Augment "" is the source's
	// DefaultAugment; SkipBadImages leaves out (and counts) images that do
	// not decode instead of failing.
	Augment       string
	SkipBadImages bool
}

// JPEGDecoder decodes JPEG data to interleaved RGB.
type JPEGDecoder interface {
	// Size is the image's width and height.
	Size(data []byte) (w, h int, err error)
	// Decode may shrink the image while its shorter side stays >= minShorter;
	// it decodes into dst when dst has the room.
	Decode(data []byte, minShorter int, dst []byte) (pix []byte, w, h int, err error)
}

// Split is one part (train or validation) of a data set at one resolution.
// Its images are C x H x W planar, except the ImageNet recipe's training
// images, stored larger (see stored) and cropped by the loader to H x W.
type Split struct {
	N, C, H, W int
	images     []byte
	labels     []uint16
	stored     []storedImage // nil: every image is C*H*W planar
}

// Stored reports whether the split holds larger images for random crops.
func (s Split) Stored() bool { return s.stored != nil }

// photo is stored image i (aliasing the cache).
func (s Split) photo(i int) rgbImage {
	e := s.stored[i]
	n := uint64(e.W) * uint64(e.H) * 3
	return rgbImage{pix: s.images[e.Off : e.Off+n], w: int(e.W), h: int(e.H)}
}

// Image returns image i as C*H*W bytes (aliasing the cache); not for stored
// splits.
func (s Split) Image(i int) []byte {
	if s.stored != nil {
		panic("dataset: Image of a split of stored photos")
	}
	sz := s.C * s.H * s.W
	return s.images[i*sz : (i+1)*sz]
}

// Label returns the class index of image i.
func (s Split) Label(i int) int { return int(s.labels[i]) }

// Limit keeps the first n images (n <= 0 keeps all).
func (s Split) Limit(n int) Split {
	if n <= 0 || n >= s.N {
		return s
	}
	out := s
	out.N, out.labels = n, s.labels[:n]
	if s.stored != nil {
		out.stored = s.stored[:n]
	} else {
		out.images = s.images[:n*s.C*s.H*s.W]
	}
	return out
}

// Set is a data set at one resolution.
type Set struct {
	Name       string
	SourceHash string // changes when the source's content changes
	Resolution int
	Classes    []string
	Mean, Std  []float32 // per channel over the training split, in [0,1] units
	Train, Val Split
	CachePath  string
	Augment    string // the recipe the cache was built for
	NativeSide int    // median shorter side of the source images
	// Skipped images did not decode (SkipBadImages); SkippedFiles names the
	// first few.
	Skipped      int
	SkippedFiles []string
	// BuildSeconds is how long this Open spent building the cache (0 when
	// the cache was there).
	BuildSeconds float64
	mapped       []byte
}

// Close unmaps the cache file.
func (s *Set) Close() error {
	if s.mapped == nil {
		return nil
	}
	err := syscall.Munmap(s.mapped)
	s.mapped = nil
	return err
}

// source is a data set before resizing.
type source struct {
	name     string
	identity Identity
	classes  []string
	train    rawSource
	val      rawSource
}

// rawSource yields images of any size with their labels.
type rawSource interface {
	Len() int
	Channels() int
	// Resize writes image i, resized to res x res, into dst (C*res*res
	// bytes), and returns the source image's shorter side.
	Resize(i, res int, dst []byte) (int, error)
	Label(i int) int
}

// rawSplit is an in-memory uniform-size split (IDX).
type rawSplit struct {
	n, c, h, w int
	pixels     []byte
	labels     []byte
}

func (r *rawSplit) Len() int        { return r.n }
func (r *rawSplit) Channels() int   { return r.c }
func (r *rawSplit) Label(i int) int { return int(r.labels[i]) }
func (r *rawSplit) Resize(i, res int, dst []byte) (int, error) {
	sz := r.c * r.h * r.w
	resizePlanar(r.pixels[i*sz:(i+1)*sz], r.c, r.h, r.w, dst, res)
	return min(r.h, r.w), nil
}

// FashionMNIST names the built-in data set (Debian's package).
const FashionMNIST = "fashion-mnist"

// Resolve names a source: FashionMNIST, a folder with IDX files, or an
// image folder (one sub-folder per class).
func Resolve(spec string) (string, error) { return resolve(spec, nil) }

// resolve is Resolve, refusing a folder outside roots (if any).
func resolve(spec string, roots confine.Roots) (string, error) {
	if spec == "" || spec == FashionMNIST {
		if _, err := os.Stat(FashionMNISTDir); err != nil {
			return "", fmt.Errorf("%w: fashion-mnist not found at %s: apt-get install dataset-fashion-mnist", ErrBadData, FashionMNISTDir)
		}
		return FashionMNISTDir, nil
	}
	// The roots first: a folder outside them is refused alike whether it
	// exists or not; inside, the resolved path is what is read.
	dir, err := roots.Resolve(spec)
	if err != nil {
		return "", fmt.Errorf("%w: data: %w", ErrBadData, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("%w: data %q: %v", ErrBadData, spec, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%w: data %q is not a directory", ErrBadData, spec)
	}
	return filepath.Abs(dir)
}

// HashMemo remembers the content hashes of IDX files by path, size and
// modification time, so that naming a data set does not re-read it on every
// epoch. The zero value is ready to use.
type HashMemo struct {
	mu sync.Mutex
	m  map[string]string
}

func (h *HashMemo) get(key string) (string, bool) {
	if h == nil {
		return "", false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[key]
	return v, ok
}

func (h *HashMemo) put(key, v string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[key] = v
}

// idxHash is the SHA-256 of the four IDX files' bytes.
func idxHash(paths [4]string, memo *HashMemo) (string, error) {
	var key strings.Builder
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", fileError(p, err)
		}
		fmt.Fprintf(&key, "%s\x00%d\x00%d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	if v, ok := memo.get(key.String()); ok {
		return v, nil
	}
	h := sha256.New()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", fileError(p, err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fileError(p, err)
		}
	}
	v := hex.EncodeToString(h.Sum(nil))
	memo.put(key.String(), v)
	return v, nil
}

// identify names a source and identifies its content without decoding
// images.
func identify(dir string, opts Options) (name string, id Identity, err error) {
	if paths, err := findIDX(dir); err == nil {
		h, err := idxHash(paths, opts.Hashes)
		return filepath.Base(dir), Identity{Hash: h}, err
	}
	src, err := openFolder(dir, opts) // lists and digests files; decodes nothing
	if err != nil {
		return "", Identity{}, err
	}
	return src.name, src.identity, nil
}

// withDefaults fills the options a caller left unset.
func (o Options) withDefaults() Options {
	if o.CacheDir == "" {
		o.CacheDir = defaultCacheDir()
	}
	if o.ValFraction == 0 {
		o.ValFraction = 0.1
	}
	return o
}

// openSource reads a source for resizing (IDX files are decoded here).
func openSource(dir string, opts Options) (*source, error) {
	paths, err := findIDX(dir)
	if err != nil {
		return openFolder(dir, opts)
	}
	train, err := loadIDXSplit(paths[0], paths[1])
	if err != nil {
		return nil, err
	}
	val, err := loadIDXSplit(paths[2], paths[3])
	if err != nil {
		return nil, err
	}
	maxLabel := 0
	for _, l := range append(append([]byte{}, train.labels...), val.labels...) {
		maxLabel = max(maxLabel, int(l))
	}
	if maxLabel < 1 {
		return nil, fmt.Errorf("%w: %s has a single class", ErrBadData, dir)
	}
	classes := make([]string, maxLabel+1)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	if filepath.Base(dir) == FashionMNIST && len(classes) == 10 {
		classes = []string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"}
	}
	hash, err := idxHash(paths, opts.Hashes)
	if err != nil {
		return nil, err
	}
	return &source{name: filepath.Base(dir), identity: Identity{Hash: hash}, classes: classes, train: train, val: val}, nil
}

func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "resomap")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "resomap")
	}
	return filepath.Join(os.TempDir(), "resomap-cache")
}

// MaxResolution is the largest image side ResoMap trains or evaluates at
// (the one bound: sweep's models, test resolutions and prepare-data use
// it): beyond it a single image is larger than any accelerator can train
// on in a useful batch.
const MaxResolution = 2048

// Open returns the data set at resolution res, building its cache first if
// needed. The cache is keyed by the source's content hash, the resolution
// and the cache format, so a changed source is never served stale.
func Open(spec string, res int, opts Options) (*Set, error) {
	if res < 1 || res > MaxResolution {
		return nil, fmt.Errorf("%w: resolution %d, want 1..%d", ErrBadData, res, MaxResolution)
	}
	dir, err := resolve(spec, opts.Roots)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	name, id, err := identify(dir, opts)
	if err != nil {
		return nil, err
	}
	if opts.Augment == "" {
		if opts.Augment, err = DefaultAugment(dir); err != nil {
			return nil, err
		}
	}
	if err := CheckAugment(opts.Augment); err != nil {
		return nil, err
	}
	path := cachePath(name, id, res, decoderOf(dir, opts.Augment, opts), opts)
	if set, err := openCache(path); set != nil || err != nil {
		return set, err
	}
	unlock, err := lockBuild(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another training may have built it while this one waited.
	if set, err := openCache(path); set != nil || err != nil {
		return set, err
	}
	src, err := openSource(dir, opts)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	if err := buildCache(src, res, path, opts); err != nil {
		return nil, err
	}
	set, err := mapCache(path)
	if set != nil {
		set.BuildSeconds = time.Since(started).Seconds()
	}
	return set, err
}

// cachePath names a cache by everything its bytes depend on: the source's
// content, the resolution, the split, the recipe, the JPEG decoder that made
// its pixels ("" where none of the worker's choosing did) and the format.
func cachePath(name string, id Identity, res int, decoder string, opts Options) string {
	key := fmt.Sprintf("%s|%s|%d|%g|%d", cacheVersion, id.Hash, res, opts.ValFraction, opts.SplitSeed)
	if opts.Augment != AugmentCIFAR {
		key += "|" + opts.Augment
	}
	if opts.SkipBadImages {
		key += "|skip-bad"
	}
	if decoder != "" {
		key += "|decoder=" + decoder // caches of the same photos by other decoders differ
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(opts.CacheDir, fmt.Sprintf("%s-%dpx-%s.rmds", sanitize(name), res, hex.EncodeToString(sum[:8])))
}

// openCache maps the cache at path if there is a sound one: (nil, nil)
// when it is absent, or was damaged (a full disk, a crash) and is removed
// to be built again.
func openCache(path string) (*Set, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	set, err := mapCache(path)
	if !errors.Is(err, errCorruptCache) {
		return set, err
	}
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("remove damaged data cache: %w", err)
	}
	return nil, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// SourceHash returns the content hash of a source without resizing it.
func SourceHash(spec string, opts Options) (string, error) {
	id, err := Describe(spec, opts)
	return id.Hash, err
}
