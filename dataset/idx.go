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
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &plainIDX{r: br, f: f, left: st.Size()}, nil
}

// plainIDX is an uncompressed IDX file, which knows how many bytes remain.
type plainIDX struct {
	r    io.Reader
	f    *os.File
	left int64
}

func (p *plainIDX) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.left -= int64(n)
	return n, err
}

func (p *plainIDX) Remaining() int64 { return p.left }
func (p *plainIDX) Close() error     { return p.f.Close() }

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
	// A plain file's size says at once whether the data is there (then it
	// is allocated in one piece); a gzipped one's memory grows with what
	// it inflates to, doubling, never to what its header declares.
	if size, known := dataSize(r); known && int64(total) > size {
		return nil, nil, fmt.Errorf("data: the dimensions %v declare %d bytes, the file holds %d (truncated?)", dims, total, size)
	}
	data := make([]byte, min(total, idxFirstRead))
	n := 0
	for {
		m, err := io.ReadFull(r, data[n:])
		n += m
		if err != nil {
			return nil, nil, fmt.Errorf("data: %d of the %d bytes its dimensions %v declare (truncated?): %v", n, total, dims, err)
		}
		if n == total {
			return dims, data, nil
		}
		data = append(data, make([]byte, min(total, 2*len(data))-len(data))...)
	}
}

// idxFirstRead is how much of a gzipped IDX file's data is allocated
// before its bytes arrive.
const idxFirstRead = 64 << 20

// sizedReader is an IDX stream that knows how many data bytes follow
// (a plain file's remaining size).
type sizedReader interface {
	io.Reader
	Remaining() int64
}

func dataSize(r io.Reader) (int64, bool) {
	if s, ok := r.(sizedReader); ok {
		return s.Remaining(), true
	}
	return 0, false
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
