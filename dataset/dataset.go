// Package dataset reads image classification data (MNIST-style IDX files or
// an image folder), resizes it once per resolution with an antialiasing
// filter into a compact uint8 cache file that is memory-mapped afterwards,
// and serves seeded, augmented batches ahead of the training loop.
package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/resomap/resomap/internal/atomicfile"
)

// ErrBadData marks missing or malformed input data.
var ErrBadData = errors.New("bad data")

// FashionMNISTDir is where Debian's dataset-fashion-mnist installs the data.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// cacheVersion changes whenever the cache's bytes would change for the same
// source (resize filter, layout), so old caches are never reused.
const cacheVersion = "rmds-2"

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
}

// Split is one part (train or validation) of a data set at one resolution.
type Split struct {
	N, C, H, W int
	images     []byte
	labels     []uint16
}

// Image returns image i as C*H*W bytes (aliasing the cache).
func (s Split) Image(i int) []byte {
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
	sz := s.C * s.H * s.W
	return Split{N: n, C: s.C, H: s.H, W: s.W, images: s.images[:n*sz], labels: s.labels[:n]}
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
	mapped     []byte
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
	// Resize writes image i, resized to res x res, into dst (C*res*res bytes).
	Resize(i, res int, dst []byte) error
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
func (r *rawSplit) Resize(i, res int, dst []byte) error {
	sz := r.c * r.h * r.w
	resizePlanar(r.pixels[i*sz:(i+1)*sz], r.c, r.h, r.w, dst, res)
	return nil
}

// FashionMNIST names the built-in data set (Debian's package).
const FashionMNIST = "fashion-mnist"

// Resolve names a source: FashionMNIST, a folder with IDX files, or an
// image folder (one sub-folder per class).
func Resolve(spec string) (string, error) {
	if spec == "" || spec == FashionMNIST {
		if _, err := os.Stat(FashionMNISTDir); err != nil {
			return "", fmt.Errorf("%w: fashion-mnist not found at %s: apt-get install dataset-fashion-mnist", ErrBadData, FashionMNISTDir)
		}
		return FashionMNISTDir, nil
	}
	st, err := os.Stat(spec)
	if err != nil {
		return "", fmt.Errorf("%w: data %q: %v", ErrBadData, spec, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%w: data %q is not a directory", ErrBadData, spec)
	}
	return filepath.Abs(spec)
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

type cacheHeader struct {
	Version    string    `json:"version"`
	Name       string    `json:"name"`
	SourceHash string    `json:"source_hash"`
	Resolution int       `json:"resolution"`
	Channels   int       `json:"channels"`
	Classes    []string  `json:"classes"`
	TrainN     int       `json:"train_n"`
	ValN       int       `json:"val_n"`
	Mean       []float32 `json:"mean"`
	Std        []float32 `json:"std"`
}

// Open returns the data set at resolution res, building its cache first if
// needed. The cache is keyed by the source's content hash, the resolution
// and the cache format, so a changed source is never served stale.
func Open(spec string, res int, opts Options) (*Set, error) {
	if res < 1 || res > 4096 {
		return nil, fmt.Errorf("%w: resolution %d", ErrBadData, res)
	}
	dir, err := Resolve(spec)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	name, id, err := identify(dir, opts)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d|%g|%d", cacheVersion, id.Hash, res, opts.ValFraction, opts.SplitSeed)))
	path := filepath.Join(opts.CacheDir, fmt.Sprintf("%s-%dpx-%s.rmds", sanitize(name), res, hex.EncodeToString(key[:8])))
	if _, err := os.Stat(path); err == nil {
		set, err := mapCache(path)
		if !errors.Is(err, errCorruptCache) {
			return set, err
		}
		// Truncated or damaged (a full disk, a crash of an older version):
		// it is only a cache, so it is built again.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove damaged data cache: %w", err)
		}
	}
	src, err := openSource(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := buildCache(src, res, path); err != nil {
		return nil, err
	}
	return mapCache(path)
}

// errCorruptCache marks a cache file that fails its checks.
var errCorruptCache = errors.New("damaged data cache")

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// resizeAll resizes every image of r in parallel into one NCHW buffer.
func resizeAll(r rawSource, res int) ([]byte, []uint16, error) {
	n, c := r.Len(), r.Channels()
	sz := c * res * res
	out := make([]byte, n*sz)
	labels := make([]uint16, n)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := r.Resize(i, res, out[i*sz:(i+1)*sz]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				labels[i] = uint16(r.Label(i))
			}
		}(w)
	}
	wg.Wait()
	return out, labels, firstErr
}

func buildCache(src *source, res int, path string) error {
	trainPix, trainLab, err := resizeAll(src.train, res)
	if err != nil {
		return err
	}
	valPix, valLab, err := resizeAll(src.val, res)
	if err != nil {
		return err
	}
	c := src.train.Channels()
	mean, std := channelStats(trainPix, c, res*res)
	hdr, _ := json.Marshal(cacheHeader{
		Version: cacheVersion, Name: src.name, SourceHash: src.identity.Hash, Resolution: res, Channels: c,
		Classes: src.classes, TrainN: len(trainLab), ValN: len(valLab), Mean: mean, Std: std,
	})
	// Layout: magic, header length, JSON header, padding to 8 bytes, train
	// images, val images, train labels, val labels (uint16 little-endian).
	var pre [16]byte
	copy(pre[:8], "RMDSET01")
	binary.LittleEndian.PutUint64(pre[8:], uint64(len(hdr)))
	buf := append(pre[:], hdr...)
	for len(buf)%8 != 0 {
		buf = append(buf, ' ')
	}
	var parts []io.Reader
	for _, b := range [][]byte{buf, trainPix, valPix, u16bytes(trainLab), u16bytes(valLab)} {
		parts = append(parts, bytes.NewReader(b))
	}
	if err := atomicfile.Write(path, io.MultiReader(parts...)); err != nil {
		return fmt.Errorf("data cache %s: %w", path, err)
	}
	return nil
}

func u16bytes(v []uint16) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
}

func channelStats(pix []byte, c, plane int) ([]float32, []float32) {
	mean, std := make([]float32, c), make([]float32, c)
	n := len(pix) / (c * plane)
	for ch := 0; ch < c; ch++ {
		var s, s2 float64
		for i := 0; i < n; i++ {
			for _, v := range pix[(i*c+ch)*plane : (i*c+ch+1)*plane] {
				f := float64(v)
				s += f
				s2 += f * f
			}
		}
		cnt := float64(n * plane)
		m := s / cnt
		mean[ch] = float32(m / 255)
		std[ch] = float32(math.Sqrt(math.Max(s2/cnt-m*m, 1e-6)) / 255)
	}
	return mean, std
}

func mapCache(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data cache: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mapped, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	fail := func(msg string) (*Set, error) {
		syscall.Munmap(mapped)
		return nil, fmt.Errorf("%w %s: %s", errCorruptCache, path, msg)
	}
	if len(mapped) < 16 || string(mapped[:8]) != "RMDSET01" {
		return fail("bad magic")
	}
	hl := binary.LittleEndian.Uint64(mapped[8:16])
	if hl > uint64(len(mapped)-16) {
		return fail("bad header length")
	}
	var h cacheHeader
	if err := json.Unmarshal(mapped[16:16+hl], &h); err != nil {
		return fail(err.Error())
	}
	off := (16 + int(hl) + 7) &^ 7
	sz := h.Channels * h.Resolution * h.Resolution
	need := off + (h.TrainN+h.ValN)*sz + 2*(h.TrainN+h.ValN)
	if h.Version != cacheVersion || len(mapped) != need {
		return fail(fmt.Sprintf("version %q, %d bytes, want %d", h.Version, len(mapped), need))
	}
	trainPix := mapped[off : off+h.TrainN*sz]
	off += h.TrainN * sz
	valPix := mapped[off : off+h.ValN*sz]
	off += h.ValN * sz
	labels := unsafe.Slice((*uint16)(unsafe.Pointer(&mapped[off])), h.TrainN+h.ValN)
	mk := func(n int, pix []byte, lab []uint16) Split {
		return Split{N: n, C: h.Channels, H: h.Resolution, W: h.Resolution, images: pix, labels: lab}
	}
	return &Set{
		Name: h.Name, SourceHash: h.SourceHash, Resolution: h.Resolution, Classes: h.Classes,
		Mean: h.Mean, Std: h.Std, CachePath: path, mapped: mapped,
		Train: mk(h.TrainN, trainPix, labels[:h.TrainN]),
		Val:   mk(h.ValN, valPix, labels[h.TrainN:]),
	}, nil
}

// SourceHash returns the content hash of a source without resizing it.
func SourceHash(spec string, opts Options) (string, error) {
	id, err := Describe(spec, opts)
	return id.Hash, err
}
