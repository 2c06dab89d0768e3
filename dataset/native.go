package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
)

// nativeSample bounds how many image headers NativeSide reads: a median
// over an evenly spread sample of a large folder is as good as over all.
const nativeSample = 1000

// NativeSide is the size of a data source's images: an IDX file's image
// side, or the median shorter side of an image folder's training images
// (read from their headers, on an even sample of at most 1,000). Training
// far above it measures upsampling, not resolution.
func NativeSide(spec string, opts Options) (int, error) {
	dir, err := resolve(spec, opts.Roots)
	if err != nil {
		return 0, err
	}
	opts = opts.withDefaults()
	if paths, err := findIDX(dir); err == nil {
		return idxSide(paths[0])
	}
	src, err := listFolder(dir, opts) // no digests: only sizes are wanted
	if err != nil {
		return 0, err
	}
	files := src.train.(*fileSplit).files
	step := max(1, len(files)/nativeSample)
	var sides []int
	for i := 0; i < len(files); i += step {
		side, err := headerSide(files[i], opts)
		if errors.Is(err, ErrBadData) {
			continue // a bad image fails (or is skipped) where it is decoded
		}
		if err != nil {
			return 0, err
		}
		sides = append(sides, side)
	}
	return median(sides), nil
}

// idxSide reads the image side from an IDX images file's header.
func idxSide(path string) (int, error) {
	r, err := openMaybeGzip(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadData, err)
	}
	defer r.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: %s: header: %v", ErrBadData, path, err)
	}
	h, w := binary.BigEndian.Uint32(hdr[8:12]), binary.BigEndian.Uint32(hdr[12:16])
	return int(min(h, w)), nil
}

// Channels is the number of channels a data set's images are trained
// with: 1 for IDX files (grey), 3 for an image folder (decoded to RGB).
func Channels(spec string, opts Options) (int, error) {
	dir, err := resolve(spec, opts.Roots)
	if err != nil {
		return 0, err
	}
	if _, err := findIDX(dir); err == nil {
		return 1, nil
	}
	return 3, nil
}

// headerSide is an image file's shorter side, from its header.
func headerSide(path string, opts Options) (int, error) {
	f, err := opts.open(path)
	if err != nil {
		return 0, fileError(path, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrBadData, path, err)
	}
	return min(cfg.Width, cfg.Height), nil
}
