// Package pretrained reads the weights a training starts from: a PyTorch
// .pth (the zip/pickle format torch.save writes, read in Go with gopickle)
// or a safetensors file, from a path, an URL or a torchvision name
// (torchvision:resnet18), downloaded once into a cache and checked against
// the checksum its name carries. read.go reads, source.go finds and
// downloads, torchvision.go names torchvision's published weights.
package pretrained

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/resomap/resomap/checkpoint"
)

// ErrFormat marks a file that holds no state dict ResoMap can read.
var ErrFormat = errors.New("not a state dict")

// Read returns the tensors of a state dict in a .pth or safetensors file,
// by name (a "module." prefix that DataParallel adds is dropped).
func Read(path string) (map[string]checkpoint.Tensor, error) {
	head := make([]byte, 4)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	_, err = f.Read(head)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ts []checkpoint.Tensor
	if bytes.Equal(head, []byte("PK\x03\x04")) {
		ts, err = readPth(path)
	} else {
		ts, err = readSafetensors(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string]checkpoint.Tensor, len(ts))
	for _, t := range ts {
		t.Name = strings.TrimPrefix(t.Name, "module.")
		out[t.Name] = t
	}
	return out, nil
}

func readSafetensors(path string) ([]checkpoint.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ts, _, err := checkpoint.DecodeSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("%w: neither a .pth (zip) nor safetensors: %v", ErrFormat, err)
	}
	return ts, nil
}

// readPth reads torch.save's zip format: a pickled dict of tensors, or a
// dict holding one under "state_dict" or "model" (training scripts' habit).
func readPth(path string) ([]checkpoint.Tensor, error) {
	obj, err := pytorch.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	d, ok := asDict(obj)
	if !ok {
		return nil, fmt.Errorf("%w: the file holds a %T, want a dict of tensors (save model.state_dict(), not the model)", ErrFormat, obj)
	}
	for _, wrapper := range []string{"state_dict", "model"} {
		if inner, ok := d[wrapper]; ok {
			if id, ok := asDict(inner); ok {
				d = id
			}
		}
	}
	names := make([]string, 0, len(d))
	for k := range d {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []checkpoint.Tensor
	for _, name := range names {
		pt, ok := d[name].(*pytorch.Tensor)
		if !ok {
			continue // e.g. a "_metadata" entry or an epoch counter
		}
		t, err := tensorOf(name, pt)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no tensors in it", ErrFormat)
	}
	return out, nil
}

// asDict returns a pickled dict or OrderedDict by string key.
func asDict(obj any) (map[string]any, bool) {
	out := map[string]any{}
	switch d := obj.(type) {
	case *types.OrderedDict:
		for k, e := range d.Map {
			if s, ok := k.(string); ok {
				out[s] = e.Value
			}
		}
	case *types.Dict:
		for _, e := range *d {
			if s, ok := e.Key.(string); ok {
				out[s] = e.Value
			}
		}
	default:
		return nil, false
	}
	return out, true
}

// tensorOf copies a pickled tensor's elements (any strides) into a
// contiguous little-endian checkpoint.Tensor.
func tensorOf(name string, pt *pytorch.Tensor) (checkpoint.Tensor, error) {
	t := checkpoint.Tensor{Name: name}
	n := 1
	for _, s := range pt.Size {
		t.Shape = append(t.Shape, int64(s))
		n *= s
	}
	var storageLen int
	var put func(i, j int)
	switch s := pt.Source.(type) {
	case *pytorch.FloatStorage:
		t.DType, t.Data, storageLen = "F32", make([]byte, 4*n), len(s.Data)
		put = func(i, j int) { binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(s.Data[j])) }
	case *pytorch.LongStorage:
		t.DType, t.Data, storageLen = "I64", make([]byte, 8*n), len(s.Data)
		put = func(i, j int) { binary.LittleEndian.PutUint64(t.Data[8*i:], uint64(s.Data[j])) }
	default:
		return t, fmt.Errorf("%w: tensor %s has storage %T (float32 and int64 are read; convert with .float())", ErrFormat, name, pt.Source)
	}
	if n > 0 && lastIndex(pt.Size, pt.Stride, pt.StorageOffset) >= storageLen {
		return t, fmt.Errorf("%w: tensor %s reads past its storage", ErrFormat, name)
	}
	eachIndex(pt.Size, pt.Stride, pt.StorageOffset, n, put)
	return t, nil
}

// lastIndex is the furthest storage element a tensor view reads.
func lastIndex(size, stride []int, offset int) int {
	p := offset
	for d := range size {
		p += (size[d] - 1) * stride[d]
	}
	return p
}

// eachIndex calls put(i, j) for the i-th element in row-major order and
// its place j in the storage.
func eachIndex(size, stride []int, offset, n int, put func(i, j int)) {
	idx := make([]int, len(size))
	p := offset
	for i := range n {
		put(i, p)
		for d := len(size) - 1; d >= 0; d-- {
			idx[d]++
			p += stride[d]
			if idx[d] < size[d] {
				break
			}
			p -= idx[d] * stride[d]
			idx[d] = 0
		}
	}
}
