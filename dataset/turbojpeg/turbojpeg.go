// Package turbojpeg decodes JPEG files with libjpeg-turbo's TurboJPEG
// library (Debian's libturbojpeg0), loaded at run time with purego: the same
// decoder PIL uses, with SIMD and DCT-domain downscaling. The dataset
// package falls back to Go's decoder when the library is absent.
package turbojpeg

import (
	"errors"
	"fmt"
	"os"

	"github.com/ebitengine/purego"
)

// ErrMissing is returned by Open when no TurboJPEG library can be loaded.
var ErrMissing = errors.New("libturbojpeg not found")

// libNames are tried in order; RESOMAP_TURBOJPEG overrides them.
var libNames = []string{"libturbojpeg.so.0", "libturbojpeg.so"}

const (
	pixelFormatRGB = 0    // TJPF_RGB
	flagStopOnWarn = 8192 // TJFLAG_STOPONWARNING: a damaged file is an error, as in PIL
)

// Decoder decodes JPEG images; safe for concurrent use (one TurboJPEG handle
// per call in flight, reused).
type Decoder struct {
	Path string

	initDecompress func() uintptr
	header         func(h uintptr, buf *byte, size uint64, w, ht, subsamp, colorspace *int32) int32
	decompress     func(h uintptr, buf *byte, size uint64, dst *byte, w, pitch, ht, pf, flags int32) int32
	errorStr       func(h uintptr) string

	handles chan uintptr // idle handles
}

// Open loads the library; a process keeps one Decoder for all its work.
func Open() (*Decoder, error) {
	names := libNames
	if p := os.Getenv("RESOMAP_TURBOJPEG"); p != "" {
		names = []string{p}
	}
	var errs []error
	for _, name := range names {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d := &Decoder{Path: name, handles: make(chan uintptr, 64)}
		purego.RegisterLibFunc(&d.initDecompress, h, "tjInitDecompress")
		purego.RegisterLibFunc(&d.header, h, "tjDecompressHeader3")
		purego.RegisterLibFunc(&d.decompress, h, "tjDecompress2")
		purego.RegisterLibFunc(&d.errorStr, h, "tjGetErrorStr2")
		return d, nil
	}
	return nil, fmt.Errorf("%w (apt-get install libturbojpeg0): %v", ErrMissing, errors.Join(errs...))
}

// Name is the decoder's name in identities (dataset.NamedDecoder): its
// pixels differ from Go's decoder's.
func (d *Decoder) Name() string { return "libjpeg-turbo" }

func (d *Decoder) handle() (uintptr, error) {
	select {
	case h := <-d.handles:
		return h, nil
	default:
	}
	h := d.initDecompress()
	if h == 0 {
		return 0, errors.New("tjInitDecompress failed")
	}
	return h, nil
}

func (d *Decoder) release(h uintptr) {
	select {
	case d.handles <- h:
	default: // more handles than ever run at once: keep a bounded few
	}
}

// Size returns the image's full width and height from its header.
func (d *Decoder) Size(data []byte) (w, h int, err error) {
	if len(data) == 0 {
		return 0, 0, errors.New("empty JPEG")
	}
	hd, err := d.handle()
	if err != nil {
		return 0, 0, err
	}
	defer d.release(hd)
	var w32, h32, sub, cs int32
	if d.header(hd, &data[0], uint64(len(data)), &w32, &h32, &sub, &cs) != 0 {
		return 0, 0, fmt.Errorf("JPEG header: %s", d.errorStr(hd))
	}
	return int(w32), int(h32), nil
}

// Decode decodes data into interleaved RGB. It shrinks by 1/2, 1/4 or 1/8
// in the DCT domain (libjpeg-turbo's SIMD scaled IDCTs) as long as the
// shorter side stays at least minShorter, so a later resize to that side
// never upsamples what the file had; 0 decodes at full size. It decodes
// into dst when dst has the room (a cache build reuses one buffer a
// worker), else into a new slice.
func (d *Decoder) Decode(data []byte, minShorter int, dst []byte) (pix []byte, w, h int, err error) {
	fw, fh, err := d.Size(data)
	if err != nil {
		return nil, 0, 0, err
	}
	w, h = fw, fh
	for denom := 8; denom >= 2 && minShorter > 0; denom /= 2 {
		sw, sh := (fw+denom-1)/denom, (fh+denom-1)/denom
		if min(sw, sh) >= minShorter {
			w, h = sw, sh
			break
		}
	}
	hd, err := d.handle()
	if err != nil {
		return nil, 0, 0, err
	}
	defer d.release(hd)
	if pix = dst[:0]; cap(pix) < w*h*3 {
		pix = make([]byte, w*h*3)
	}
	pix = pix[:w*h*3]
	if d.decompress(hd, &data[0], uint64(len(data)), &pix[0], int32(w), 0, int32(h), pixelFormatRGB, flagStopOnWarn) != 0 {
		return nil, 0, 0, fmt.Errorf("JPEG decode: %s", d.errorStr(hd))
	}
	return pix, w, h, nil
}
