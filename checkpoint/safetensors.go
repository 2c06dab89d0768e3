package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Tensor is one named tensor in a safetensors file.
type Tensor struct {
	Name  string
	DType string // safetensors names: F32, F64, I64, BF16, F16, I32, U8
	Shape []int64
	Data  []byte // little-endian, row-major
}

var dtypeSize = map[string]int64{"F32": 4, "F64": 8, "I64": 8, "BF16": 2, "F16": 2, "I32": 4, "U8": 1}

// ErrMalformed marks a tensor file that is not valid safetensors.
var ErrMalformed = errors.New("malformed safetensors")

type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// EncodeSafetensors writes tensors in the safetensors format (loadable by
// Python's safetensors and PyTorch). Tensors are laid out in name order so
// the same tensors always give the same bytes.
func EncodeSafetensors(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	for _, t := range tensors {
		if n, err := tensorBytes(t); err != nil || n != int64(len(t.Data)) {
			return nil, fmt.Errorf("tensor %q: %d bytes for shape %v %s (%v)", t.Name, len(t.Data), t.Shape, t.DType, err)
		}
	}
	return BuildSafetensors(tensors, metadata, func(i int, dst []byte) error {
		copy(dst, tensors[i].Data)
		return nil
	})
}

// BuildSafetensors lays out tensors (names, types and shapes; Data is not
// read) as EncodeSafetensors does and has fill write tensor i's bytes
// straight into the file: a snapshot of a large model is copied once.
func BuildSafetensors(tensors []Tensor, metadata map[string]string, fill func(i int, dst []byte) error) ([]byte, error) {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return tensors[order[a]].Name < tensors[order[b]].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	offsets := make([]int64, len(tensors)+1)
	for k, i := range order {
		t := tensors[i]
		if k > 0 && tensors[order[k-1]].Name == t.Name {
			return nil, fmt.Errorf("duplicate tensor %q", t.Name)
		}
		n, err := tensorBytes(t)
		if err != nil {
			return nil, err
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[t.Name] = headerEntry{t.DType, shape, [2]int64{offsets[k], offsets[k] + n}}
		offsets[k+1] = offsets[k] + n
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	// Pad the header with spaces to 8 bytes so tensor data stays aligned.
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	start := int64(8 + len(hb))
	out := make([]byte, start+offsets[len(tensors)])
	binary.LittleEndian.PutUint64(out, uint64(len(hb)))
	copy(out[8:], hb)
	for k, i := range order {
		if err := fill(i, out[start+offsets[k]:start+offsets[k+1]]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tensorBytes is a tensor's size from its type and shape.
func tensorBytes(t Tensor) (int64, error) {
	size, ok := dtypeSize[t.DType]
	if !ok {
		return 0, fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	for _, d := range t.Shape {
		size *= d
	}
	return size, nil
}

// DecodeSafetensors parses a safetensors file. Tensor data aliases b.
func DecodeSafetensors(b []byte) ([]Tensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	hl := binary.LittleEndian.Uint64(b)
	if hl > uint64(len(b)-8) || hl > 100<<20 {
		return nil, nil, fmt.Errorf("%w: header length %d exceeds file", ErrMalformed, hl)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hl], &raw); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	data := b[8+hl:]
	var meta map[string]string
	var out []Tensor
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("%w: tensor %q: %v", ErrMalformed, name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, nil, fmt.Errorf("%w: tensor %q: dtype %q", ErrMalformed, name, e.DType)
		}
		n := size
		for _, d := range e.Shape {
			if d < 0 || d > 0 && n > int64(len(data))/d {
				// negative, or more bytes than the file holds (checked
				// before multiplying: an overflow could come back small)
				return nil, nil, fmt.Errorf("%w: tensor %q: shape %v for %d data bytes", ErrMalformed, name, e.Shape, len(data))
			}
			n *= d
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != n {
			return nil, nil, fmt.Errorf("%w: tensor %q: offsets %v outside %d data bytes", ErrMalformed, name, e.DataOffsets, len(data))
		}
		out = append(out, Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: data[lo:hi:hi]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, meta, nil
}
