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
	sorted := make([]Tensor, len(tensors))
	copy(sorted, tensors)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, fmt.Errorf("duplicate tensor %q", t.Name)
		}
		size, ok := dtypeSize[t.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		n := size
		for _, d := range t.Shape {
			n *= d
		}
		if n != int64(len(t.Data)) {
			return nil, fmt.Errorf("tensor %q: %d bytes for shape %v %s", t.Name, len(t.Data), t.Shape, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[t.Name] = headerEntry{t.DType, shape, [2]int64{off, off + n}}
		off += n
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	// Pad the header with spaces to 8 bytes so tensor data stays aligned.
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	out := make([]byte, 8, 8+int64(len(hb))+off)
	binary.LittleEndian.PutUint64(out, uint64(len(hb)))
	out = append(out, hb...)
	for _, t := range sorted {
		out = append(out, t.Data...)
	}
	return out, nil
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
			if d < 0 {
				return nil, nil, fmt.Errorf("%w: tensor %q: shape %v", ErrMalformed, name, e.Shape)
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
