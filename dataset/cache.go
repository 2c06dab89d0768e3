package dataset

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"unsafe"

	"github.com/resomap/resomap/internal/atomicfile"
)

// A cache file is written front to back as its images are made, so memory
// stays bounded by a chunk of images whatever the data set's size:
//
//	"RMDSET03" | train images | val images | train index (ImageNet recipe:
//	offset u64, width u32, height u32 per image) | labels (u16, train then
//	val) | JSON header | header length u64 | trailer offset u64 | "RMDSEND3"
//
// A file cut short loses its trailer and is rebuilt.
const (
	cacheMagic    = "RMDSET03"
	cacheEndMagic = "RMDSEND3"
	cacheTail     = 24 // header length, trailer offset, end magic
)

// storedImage locates one training image of the ImageNet recipe's cache:
// interleaved RGB, its shorter side StoredSide(resolution), or the
// photo's own when smaller (the cache never upsamples: random crops are
// then taken from the original, as torchvision takes them).
type storedImage struct {
	Off  uint64
	W, H uint32
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
	Augment    string    `json:"augment"`
	// StoredSide bounds the shorter side of the stored training images
	// (ImageNet recipe; 0: every image is C x res x res, planar).
	StoredSide int   `json:"stored_side,omitempty"`
	ValOffset  int64 `json:"val_offset"`
	// NativeSide is the median shorter side of the source images.
	NativeSide   int      `json:"native_side"`
	Skipped      int      `json:"skipped,omitempty"`
	SkippedFiles []string `json:"skipped_files,omitempty"` // the first few
}

// maxSkippedNames bounds the names of skipped images a header keeps.
const maxSkippedNames = 20

// cacheWriter streams images into a cache file and keeps what its trailer
// needs: the index, labels and running channel sums.
type cacheWriter struct {
	w      *bufio.Writer
	off    uint64
	index  []storedImage
	labels []uint16
	sums   channelSums
	sides  []int
	hdr    cacheHeader
}

// channelSums are exact integer per-channel sums of pixel values and their
// squares (float sums would depend on the order images are added in).
type channelSums struct {
	s, s2 [3]uint64
	n     uint64 // pixels per channel
}

func (c *channelSums) add(o channelSums) {
	for i := range c.s {
		c.s[i] += o.s[i]
		c.s2[i] += o.s2[i]
	}
	c.n += o.n
}

// planarSums sums a planar C x plane image.
func planarSums(pix []byte, c, plane int) channelSums {
	var out channelSums
	for ch := 0; ch < c; ch++ {
		for _, v := range pix[ch*plane : (ch+1)*plane] {
			out.s[ch] += uint64(v)
			out.s2[ch] += uint64(v) * uint64(v)
		}
	}
	out.n = uint64(plane)
	return out
}

// interleavedSums sums an interleaved RGB image.
func interleavedSums(pix []byte) channelSums {
	n := uint64(len(pix) / 3)
	var r, g, b, r2, g2, b2 uint64
	for len(pix) >= 3 {
		p := pix[:3:3]
		vr, vg, vb := uint64(p[0]), uint64(p[1]), uint64(p[2])
		r, g, b = r+vr, g+vg, b+vb
		r2, g2, b2 = r2+vr*vr, g2+vg*vg, b2+vb*vb
		pix = pix[3:]
	}
	return channelSums{s: [3]uint64{r, g, b}, s2: [3]uint64{r2, g2, b2}, n: n}
}

// meanStd is per channel, in [0,1] units.
func (c channelSums) meanStd(channels int) ([]float32, []float32) {
	mean, std := make([]float32, channels), make([]float32, channels)
	cnt := float64(max(c.n, 1))
	for ch := 0; ch < channels; ch++ {
		s, s2 := float64(c.s[ch]), float64(c.s2[ch])
		m := s / cnt
		mean[ch] = float32(m / 255)
		std[ch] = float32(math.Sqrt(math.Max(s2/cnt-m*m, 1e-6)) / 255)
	}
	return mean, std
}

func newCacheWriter(w io.Writer, hdr cacheHeader) (*cacheWriter, error) {
	cw := &cacheWriter{w: bufio.NewWriterSize(w, 1<<20), hdr: hdr}
	return cw, cw.write([]byte(cacheMagic))
}

func (cw *cacheWriter) write(b []byte) error {
	n, err := cw.w.Write(b)
	cw.off += uint64(n)
	return err
}

// add appends one made image.
func (cw *cacheWriter) add(m madeImage, train bool) error {
	if train && cw.hdr.StoredSide > 0 {
		cw.index = append(cw.index, storedImage{Off: cw.off, W: uint32(m.w), H: uint32(m.h)})
	}
	if train {
		cw.sums.add(m.sums)
	}
	cw.labels = append(cw.labels, m.label)
	if m.side > 0 {
		cw.sides = append(cw.sides, m.side)
	}
	return cw.write(m.pix)
}

// finish writes the trailer.
func (cw *cacheWriter) finish() error {
	h := &cw.hdr
	h.Mean, h.Std = cw.sums.meanStd(h.Channels)
	h.NativeSide = median(cw.sides)
	cw.pad8()
	trailer := cw.off
	if len(cw.index) > 0 {
		if err := cw.write(unsafe.Slice((*byte)(unsafe.Pointer(&cw.index[0])), len(cw.index)*16)); err != nil {
			return err
		}
	}
	if err := cw.write(u16bytes(cw.labels)); err != nil {
		return err
	}
	js, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := cw.write(js); err != nil {
		return err
	}
	var tail [cacheTail]byte
	binary.LittleEndian.PutUint64(tail[:8], uint64(len(js)))
	binary.LittleEndian.PutUint64(tail[8:16], trailer)
	copy(tail[16:], cacheEndMagic)
	if err := cw.write(tail[:]); err != nil {
		return err
	}
	return cw.w.Flush()
}

func (cw *cacheWriter) pad8() {
	for cw.off%8 != 0 {
		cw.write([]byte{0})
	}
}

func median(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := append([]int(nil), v...)
	sort.Ints(s)
	return s[len(s)/2]
}

func u16bytes(v []uint16) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
}

// writeCache streams a cache file into place atomically (temporary file,
// sync, rename): fill writes the images, then the trailer follows.
func writeCache(path string, hdr cacheHeader, fill func(*cacheWriter) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		cw, err := newCacheWriter(pw, hdr)
		if err == nil {
			err = fill(cw)
		}
		if err == nil {
			err = cw.finish()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	err := atomicfile.Write(path, pr)
	pr.CloseWithError(errors.New("cache file not written")) // unblocks fill if Write stopped early
	if ferr := <-done; ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("data cache %s: %w", path, err)
	}
	return nil
}

// errCorruptCache marks a cache file that fails its checks.
var errCorruptCache = errors.New("damaged data cache")

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
	if st.Size() < int64(len(cacheMagic)+cacheTail) {
		return nil, fmt.Errorf("%w %s: %d bytes", errCorruptCache, path, st.Size())
	}
	mapped, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	set, err := parseCache(mapped)
	if err != nil {
		syscall.Munmap(mapped)
		return nil, fmt.Errorf("%w %s: %v", errCorruptCache, path, err)
	}
	set.CachePath = path
	return set, nil
}

// parseCache checks a mapped cache file's layout and returns its data set.
func parseCache(m []byte) (*Set, error) {
	size := uint64(len(m))
	tail := m[size-cacheTail:]
	if string(m[:8]) != cacheMagic || string(tail[16:]) != cacheEndMagic {
		return nil, errors.New("bad magic (cut short?)")
	}
	hl, trailer := binary.LittleEndian.Uint64(tail[:8]), binary.LittleEndian.Uint64(tail[8:16])
	if hl > size-cacheTail || trailer > size-cacheTail-hl {
		return nil, errors.New("bad trailer")
	}
	var h cacheHeader
	if err := json.Unmarshal(m[size-cacheTail-hl:size-cacheTail], &h); err != nil {
		return nil, err
	}
	if h.Version != cacheVersion {
		return nil, fmt.Errorf("version %q, want %q", h.Version, cacheVersion)
	}
	indexLen := uint64(0)
	if h.StoredSide > 0 {
		indexLen = uint64(h.TrainN) * 16
	}
	plane := uint64(h.Channels * h.Resolution * h.Resolution)
	labelsAt := trailer + indexLen
	if labelsAt+2*uint64(h.TrainN+h.ValN)+hl+cacheTail != size || trailer%8 != 0 ||
		h.ValOffset < 8 || uint64(h.ValOffset)+uint64(h.ValN)*plane > trailer {
		return nil, errors.New("sizes do not add up")
	}
	labels := unsafe.Slice((*uint16)(unsafe.Pointer(&m[labelsAt])), h.TrainN+h.ValN)
	set := &Set{Name: h.Name, SourceHash: h.SourceHash, Resolution: h.Resolution, Classes: h.Classes,
		Mean: h.Mean, Std: h.Std, Augment: h.Augment, NativeSide: h.NativeSide, Skipped: h.Skipped,
		SkippedFiles: h.SkippedFiles, mapped: m}
	set.Val = Split{N: h.ValN, C: h.Channels, H: h.Resolution, W: h.Resolution,
		images: m[h.ValOffset : uint64(h.ValOffset)+uint64(h.ValN)*plane], labels: labels[h.TrainN:]}
	set.Train = Split{N: h.TrainN, C: h.Channels, H: h.Resolution, W: h.Resolution,
		images: m[:h.ValOffset], labels: labels[:h.TrainN]}
	if h.StoredSide == 0 {
		set.Train.images = m[8 : 8+uint64(h.TrainN)*plane]
		return set, nil
	}
	if h.TrainN > 0 {
		set.Train.stored = unsafe.Slice((*storedImage)(unsafe.Pointer(&m[trailer])), h.TrainN)
	}
	for _, s := range set.Train.stored {
		if s.Off < 8 || s.Off+uint64(s.W)*uint64(s.H)*3 > uint64(h.ValOffset) || min(s.W, s.H) == 0 {
			return nil, errors.New("training image out of bounds")
		}
	}
	return set, nil
}

// lockBuild takes an exclusive lock on path's build: two processes (or two
// trainings in one: flock locks open files, not processes) that need the same
// cache build it once; the second finds it built.
func lockBuild(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("data cache: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("data cache lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
