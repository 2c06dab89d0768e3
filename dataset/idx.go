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
	dims, data, err := decodeIDX(r, wantDims)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadData, path, err)
	}
	return dims, data, nil
}

// maxIDXBytes bounds an IDX file's data (16 GiB).
const maxIDXBytes = 1 << 34

// decodeIDX reads an IDX stream of unsigned bytes with wantDims
// dimensions. Memory grows with the bytes that arrive, never with what
// the header declares: a 20-byte file declaring 16 GiB fails at its end.
func decodeIDX(r io.Reader, wantDims int) ([]int, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("header: %v", err)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || int(hdr[3]) != wantDims {
		return nil, nil, fmt.Errorf("not an IDX file of unsigned bytes with %d dimensions (magic % x)", wantDims, hdr)
	}
	dims := make([]int, wantDims)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("dims: %v", err)
		}
		if d == 0 || d > 1<<24 {
			return nil, nil, fmt.Errorf("dimension %d", d)
		}
		dims[i] = int(d)
		total *= int(d) // at most 2^34 * 2^24: no overflow
		if total > maxIDXBytes {
			return nil, nil, fmt.Errorf("dimensions %v declare over %d bytes", dims[:i+1], maxIDXBytes)
		}
	}
	// The first 64 MiB prove the file is what it says; then the rest is
	// allocated at once (no doubling: a 16 GiB file costs 16 GiB).
	data := make([]byte, min(total, idxProof))
	n, err := io.ReadFull(r, data)
	if err == nil && total > len(data) {
		data = append(data, make([]byte, total-len(data))...)
		var m int
		m, err = io.ReadFull(r, data[n:])
		n += m
	}
	if err != nil {
		return nil, nil, fmt.Errorf("data: %d of the %d bytes its dimensions %v declare (truncated?): %v", n, total, dims, err)
	}
	return dims, data, nil
}

// idxProof is how much of an IDX file's data is read before the rest is
// allocated.
const idxProof = 64 << 20

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
