package dataset

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // register decoders for image folders
	_ "image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/resomap/resomap/internal/seed"
	"golang.org/x/image/draw"
)

// fileSplit is a list of image files with labels.
type fileSplit struct {
	files  []string
	labels []int
	opts   Options
}

func (f *fileSplit) Len() int        { return len(f.files) }
func (f *fileSplit) Channels() int   { return 3 }
func (f *fileSplit) Label(i int) int { return f.labels[i] }
func (f *fileSplit) Resize(i, res int, dst []byte) (int, error) {
	fh, err := f.opts.open(f.files[i])
	if err != nil {
		return 0, fileError(f.files[i], err)
	}
	data, err := io.ReadAll(fh)
	fh.Close()
	if err != nil {
		return 0, fileError(f.files[i], err)
	}
	img, err := decodeImage(f.files[i], data)
	if err != nil {
		return 0, err
	}
	b := img.Bounds()
	if b.Dx() < 1 || b.Dy() < 1 {
		return 0, fmt.Errorf("%w: %s is empty", ErrBadData, f.files[i])
	}
	resizeImage(img, res, dst)
	return min(b.Dx(), b.Dy()), nil
}

// photo decodes image i to interleaved RGB, JPEGs through the options'
// decoder (shrunk in the DCT domain while the shorter side stays >= side,
// into buf when it has the room), and returns the file's own shorter side
// too.
func (f *fileSplit) photo(i, side int, buf []byte) (rgbImage, int, error) {
	name := f.files[i]
	fh, err := f.opts.open(name)
	if err != nil {
		return rgbImage{}, 0, fileError(name, err)
	}
	data, err := io.ReadAll(fh)
	fh.Close()
	if err != nil {
		return rgbImage{}, 0, fileError(name, err)
	}
	if d := f.opts.JPEG; d != nil && isJPEG(data) {
		fw, fh, err := d.Size(data)
		if err == nil {
			if err := checkPixels(name, fw, fh); err != nil {
				return rgbImage{}, 0, err
			}
			var img rgbImage
			img.pix, img.w, img.h, err = d.Decode(data, side*dctMargin, buf)
			if err == nil {
				return img, min(fw, fh), nil
			}
		}
		// CMYK and other rarities TurboJPEG cannot turn into RGB: Go's
		// decoder has the last word on whether the file is bad.
	}
	img, err := decodeImage(name, data)
	if err != nil {
		return rgbImage{}, 0, err
	}
	rgb := toRGB(img)
	if rgb.w < 1 || rgb.h < 1 {
		return rgbImage{}, 0, fmt.Errorf("%w: %s is empty", ErrBadData, name)
	}
	return rgb, min(rgb.w, rgb.h), nil
}

// MaxImagePixels is the largest image decoded: PIL's decompression-bomb
// limit (twice Image.MAX_IMAGE_PIXELS, where PIL refuses to open a file),
// so a 60,000 x 60,000 JPEG of a few kilobytes (14 GB decoded) is bad data
// here as in the reference script, not the end of the worker.
const MaxImagePixels = 2 * 89_478_485

// checkPixels refuses an image of w x h over MaxImagePixels.
func checkPixels(name string, w, h int) error {
	if w < 0 || h < 0 || int64(w)*int64(h) > MaxImagePixels {
		return fmt.Errorf("%w: %s is %d x %d pixels, over %d (a decompression bomb, as PIL calls it)", ErrBadData, name, w, h, MaxImagePixels)
	}
	return nil
}

// MaxDecodeBytes bounds the memory Go's decoder takes for one image: a
// progressive JPEG keeps 4 bytes of coefficients per pixel and component
// besides its pixels, so a CMYK one of a few kilobytes under the pixel
// limit could take 4 GB.
const MaxDecodeBytes = 2 << 30

// decodeImage decodes an image file's bytes with Go's decoders, its size
// (and, for a JPEG, what decoding it takes) read from its header and
// checked first.
func decodeImage(name string, data []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", ErrBadData, name, err)
	}
	if err := checkPixels(name, cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	if format == "jpeg" { // Go's own verdict: FF D8 is enough for it
		planes, progressive, ok := jpegFrame(data)
		if !ok {
			return nil, fmt.Errorf("%w: %s: a JPEG whose frame header this reader cannot find", ErrBadData, name)
		}
		// Its planes, their coefficients when progressive (an int32 per
		// sample), a CMYK or Adobe RGB conversion's RGBA, then toRGB's
		// RGBA and RGB copies.
		perPixel := planes + 7
		if planes > 3 {
			perPixel += 4
		}
		if progressive {
			perPixel += 4 * planes
		}
		if need := float64(cfg.Width) * float64(cfg.Height) * perPixel; need > MaxDecodeBytes {
			return nil, fmt.Errorf("%w: %s is a %d x %d JPEG (%.1f samples a pixel, progressive %v) that takes %.0f MB to decode, over %d MB",
				ErrBadData, name, cfg.Width, cfg.Height, planes, progressive, need/(1<<20), MaxDecodeBytes>>20)
		}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", ErrBadData, name, err)
	}
	return img, nil
}

// jpegFrame reads a JPEG's frame header as Go's decoder finds it (bytes
// between segments and FF 00 skipped): whether it is progressive, and its
// planes, the components' samples per pixel (3 for 4:4:4 YCbCr, 1.5 for
// 4:2:0, 4 for CMYK); false when there is no frame header.
func jpegFrame(data []byte) (planes float64, progressive, ok bool) {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return 0, false, false
	}
	for i := 2; i+1 < len(data); {
		if data[i] != 0xFF || data[i+1] == 0x00 || data[i+1] == 0xFF {
			i++ // stray bytes, stuffed zeros and fill bytes, skipped as Go's decoder does
			continue
		}
		m := data[i+1]
		if m >= 0xD0 && m <= 0xD7 { // RSTn: no length
			i += 2
			continue
		}
		if i+3 >= len(data) {
			return 0, false, false
		}
		n := int(data[i+2])<<8 | int(data[i+3])
		if n < 2 { // a length counts itself
			return 0, false, false
		}
		switch {
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC: // SOFn
			return framePlanes(data[i+4 : min(len(data), i+2+n)]), m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE, true
		case m == 0xDA || m == 0xD9: // scan data or the end before a frame
			return 0, false, false
		}
		i += 2 + n
	}
	return 0, false, false
}

// framePlanes is a frame header's components' samples per pixel: each
// component is sampled at its factors over the largest.
func framePlanes(h []byte) float64 {
	if len(h) < 6 {
		return 0
	}
	nc := int(h[5])
	var hmax, vmax int
	for c := range nc {
		if 6+3*c+1 >= len(h) {
			return float64(nc) // a cut header: every component at full size
		}
		f := h[6+3*c+1]
		hmax, vmax = max(hmax, int(f>>4)), max(vmax, int(f&15))
	}
	if hmax == 0 || vmax == 0 {
		return float64(nc)
	}
	var planes float64
	for c := range nc {
		f := h[6+3*c+1]
		planes += float64(max(1, int(f>>4))*max(1, int(f&15))) / float64(hmax*vmax)
	}
	return planes
}

// isJPEG tells JPEG data by its start-of-image marker.
func isJPEG(data []byte) bool {
	return len(data) > 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
}

// toRGB converts a decoded image to interleaved RGB.
func toRGB(img image.Image) rgbImage {
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	out := rgbImage{pix: make([]byte, b.Dx()*b.Dy()*3), w: b.Dx(), h: b.Dy()}
	for i := 0; i < b.Dx()*b.Dy(); i++ {
		copy(out.pix[i*3:i*3+3], rgba.Pix[i*4:i*4+3])
	}
	return out
}

func isImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// listClasses returns the sorted class folders of dir and their images.
func listClasses(dir string) ([]string, map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadData, err)
	}
	var classes []string
	files := map[string][]string{}
	for _, e := range entries {
		if !isDirOrLinkToOne(dir, e) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var imgs []string
		// The trailing separator makes the walk enter a class folder that
		// is a symbolic link (a data set assembled from links is common).
		err := filepath.WalkDir(filepath.Join(dir, e.Name())+string(filepath.Separator), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isImage(p) {
				imgs = append(imgs, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadData, err)
		}
		if len(imgs) == 0 {
			return nil, nil, fmt.Errorf("%w: class folder %s has no JPEG or PNG images", ErrBadData, filepath.Join(dir, e.Name()))
		}
		sort.Strings(imgs)
		classes = append(classes, e.Name())
		files[e.Name()] = imgs
	}
	return classes, files, nil
}

// isDirOrLinkToOne: e (in dir) is a folder, or a symbolic link to one.
func isDirOrLinkToOne(dir string, e os.DirEntry) bool {
	if e.Type()&os.ModeSymlink == 0 {
		return e.IsDir()
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && st.IsDir()
}

// openFolder reads an image folder (listFolder) and names it by content.
func openFolder(dir string, opts Options) (*source, error) {
	src, err := listFolder(dir, opts)
	if err != nil {
		return nil, err
	}
	splits := []*fileSplit{src.train.(*fileSplit), src.val.(*fileSplit)}
	if src.identity, err = contentIdentity(dir, splits, opts); err != nil {
		return nil, err
	}
	return src, nil
}

// listFolder lists an image folder: dir/<class>/*.png, or dir/train/<class>
// and dir/val/<class>. Without val/, a seeded fraction of each class is held
// out. It reads no image.
func listFolder(dir string, opts Options) (*source, error) {
	trainDir, valDir := dir, ""
	if st, err := os.Stat(filepath.Join(dir, "train")); err == nil && st.IsDir() {
		trainDir = filepath.Join(dir, "train")
		if st, err := os.Stat(filepath.Join(dir, "val")); err == nil && st.IsDir() {
			valDir = filepath.Join(dir, "val")
		}
	}
	classes, files, err := listClasses(trainDir)
	if err != nil {
		return nil, err
	}
	if len(classes) < 2 {
		return nil, fmt.Errorf("%w: %s has %d class folders; an image folder needs at least 2 (one sub-folder per class, or IDX files)", ErrBadData, trainDir, len(classes))
	}
	if len(classes) > 65535 {
		return nil, fmt.Errorf("%w: %s has %d classes", ErrBadData, trainDir, len(classes))
	}
	train, val := &fileSplit{opts: opts}, &fileSplit{opts: opts}
	if valDir != "" {
		vclasses, vfiles, err := listClasses(valDir)
		if err != nil {
			return nil, err
		}
		if strings.Join(vclasses, "/") != strings.Join(classes, "/") {
			return nil, fmt.Errorf("%w: classes of %s (%v) differ from %s (%v)", ErrBadData, valDir, vclasses, trainDir, classes)
		}
		for ci, c := range classes {
			for _, f := range files[c] {
				train.files, train.labels = append(train.files, f), append(train.labels, ci)
			}
			for _, f := range vfiles[c] {
				val.files, val.labels = append(val.files, f), append(val.labels, ci)
			}
		}
	} else {
		for ci, c := range classes {
			imgs := files[c]
			rng := rand.New(rand.NewPCG(seed.Derive(opts.SplitSeed, "split", c), 0))
			perm := rng.Perm(len(imgs))
			nval := int(float64(len(imgs)) * opts.ValFraction)
			if len(imgs) >= 2 && nval == 0 {
				nval = 1
			}
			for k, pi := range perm {
				if k < nval {
					val.files, val.labels = append(val.files, imgs[pi]), append(val.labels, ci)
				} else {
					train.files, train.labels = append(train.files, imgs[pi]), append(train.labels, ci)
				}
			}
		}
	}
	if train.Len() == 0 || val.Len() == 0 {
		return nil, fmt.Errorf("%w: %s yields %d training and %d validation images; need at least one of each", ErrBadData, dir, train.Len(), val.Len())
	}
	return &source{name: filepath.Base(dir), classes: classes, train: train, val: val}, nil
}

// dctMargin: a JPEG is shrunk in the DCT domain only while its shorter side
// stays this many times the target, so that PIL's antialiasing filter, not
// the scaled IDCT, does the final reduction (parity with torchvision).
const dctMargin = 2
