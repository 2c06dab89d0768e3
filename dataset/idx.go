package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// idxFiles are the four files of an MNIST-style data set, gzipped or not.
var idxFiles = [4]string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}

// findIDX returns the paths of the four IDX files in dir, or an error naming
// the first one missing.
func findIDX(dir string) ([4]string, error) {
	var out [4]string
	for i, name := range idxFiles {
		for _, cand := range []string{name + ".gz", name} {
			p := filepath.Join(dir, cand)
			if _, err := os.Stat(p); err == nil {
				out[i] = p
				break
			}
		}
		if out[i] == "" {
			return out, fmt.Errorf("%w: %s has no %s[.gz]", ErrBadData, dir, name)
		}
	}
	return out, nil
}

func openMaybeGzip(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrBadData, path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// readIDX reads an IDX file of unsigned bytes: dims and the flat data.
func readIDX(path string, wantDims int) ([]int, []byte, error) {
	r, err := openMaybeGzip(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadData, err)
	}
	defer r.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: header: %v", ErrBadData, path, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || int(hdr[3]) != wantDims {
		return nil, nil, fmt.Errorf("%w: %s: not an IDX file of unsigned bytes with %d dimensions (magic % x)", ErrBadData, path, wantDims, hdr)
	}
	dims := make([]int, wantDims)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: dims: %v", ErrBadData, path, err)
		}
		if d == 0 || d > 1<<24 {
			return nil, nil, fmt.Errorf("%w: %s: dimension %d", ErrBadData, path, d)
		}
		dims[i] = int(d)
		total *= int(d)
	}
	if total > 1<<34 {
		return nil, nil, fmt.Errorf("%w: %s: %d bytes declared", ErrBadData, path, total)
	}
	data := make([]byte, total)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: data: %v (truncated?)", ErrBadData, path, err)
	}
	return dims, data, nil
}

// loadIDXSplit reads one images+labels pair into a raw split.
func loadIDXSplit(imagesPath, labelsPath string) (*rawSplit, error) {
	dims, pix, err := readIDX(imagesPath, 3)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsPath, 1)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("%w: %s has %d images but %s has %d labels", ErrBadData, imagesPath, dims[0], labelsPath, ldims[0])
	}
	return &rawSplit{n: dims[0], c: 1, h: dims[1], w: dims[2], pixels: pix, labels: labels}, nil
}
