// Package pretrained reads the weights a training starts from: a PyTorch
// .pth (the zip/pickle format torch.save writes, or its legacy format of
// pickles and storages in a row, read in Go with gopickle)
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
	"github.com/resomap/resomap/internal/errkind"
)

// ErrFormat marks a file that holds no state dict ResoMap can read.
var ErrFormat = errkind.New(errkind.Invalid, "not a state dict")

// Read returns the tensors of a state dict in a .pth or safetensors file,
// by name (a "module." prefix that DataParallel adds is dropped).
func Read(path string) (map[string]checkpoint.Tensor, error) {
	ts, _, err := read(path)
	return ts, err
}

// read is Read, and a .pth's top-level dict besides (nil for safetensors):
// a checkpoint dict's other entries (Describe).
func read(path string) (map[string]checkpoint.Tensor, map[string]any, error) {
	load, err := pthLoader(path)
	if err != nil {
		return nil, nil, err
	}
	var ts []checkpoint.Tensor
	var top map[string]any
	if load != nil {
		ts, top, err = readPth(path, load)
	} else {
		ts, err = readSafetensors(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string]checkpoint.Tensor, len(ts))
	for _, t := range ts {
		t.Name = strings.TrimPrefix(t.Name, "module.")
		if _, twice := out[t.Name]; twice {
			return nil, nil, fmt.Errorf("%s: %w: %.200q is there with and without DataParallel's module. prefix", path, ErrFormat, t.Name)
		}
		out[t.Name] = t
	}
	return withoutWrapperPrefix(out), top, nil
}

// withoutWrapperPrefix drops a prefix every name shares that a training
// wrapper adds (Lightning's "model." for its module attribute).
func withoutWrapperPrefix(ts map[string]checkpoint.Tensor) map[string]checkpoint.Tensor {
	const prefix = "model."
	for name := range ts {
		if !strings.HasPrefix(name, prefix) {
			return ts
		}
	}
	out := make(map[string]checkpoint.Tensor, len(ts))
	for name, t := range ts {
		t.Name = strings.TrimPrefix(name, prefix)
		out[t.Name] = t
	}
	return out
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

// readPth reads a .pth that load unpickles (torch.save's zip format, or
// the legacy one): a pickled dict of tensors, or a checkpoint dict holding
// one (stateDictIn); top is the file's top-level dict.
func readPth(path string, load func(path string, size int64) (any, error)) (ts []checkpoint.Tensor, top map[string]any, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if top, err = loadTopDict(path, fi.Size(), load); err != nil {
		return nil, nil, err
	}
	d, err := stateDictIn(top)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(d))
	for k := range d {
		names = append(names, k)
	}
	sort.Strings(names)
	// Every tensor copies its view out of its storage: many tensors over
	// one storage must not copy it without bound.
	budget := memoryBudget(fi.Size())
	var out []checkpoint.Tensor
	for _, name := range names {
		pt, ok := d[name].(*pytorch.Tensor)
		if !ok {
			continue // e.g. a "_metadata" entry or an epoch counter
		}
		t, err := tensorOf(name, pt, &budget)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: no tensors in it", ErrFormat)
	}
	return out, top, nil
}

// checkpointKeys are where training scripts keep the state dict in a
// checkpoint dict, in the order they are looked for: Lightning's and
// pytorch/examples' state_dict, DeiT/timm scripts' model (these two first,
// in the order earlier versions descended into them, so a file they read
// names the same weights), the Python tool's model_state_dict (beside its
// resolution, epoch and validation figures), EMA weights last (what a
// user who wants them saves alone).
var checkpointKeys = []string{"state_dict", "model", "model_state_dict", "ema", "model_ema", "state_dict_ema"}

// stateDictIn is the state dict in d: under the first of checkpointKeys
// that leads to one (nested, as {'state_dict': {'model': …}}), else d
// itself when it holds tensors. A wrapper wins over tensors beside it
// (pytorch/examples saves best_acc1 as a tensor next to its state_dict).
// The choice depends on the file alone, which names the training by its
// SHA-256.
func stateDictIn(d map[string]any) (map[string]any, error) {
	if sd := findStateDict(d, 3); sd != nil {
		return sd, nil
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 12 {
		keys = append(keys[:12], "…")
	}
	return nil, fmt.Errorf("%w: no tensors in it, nor under %s (it holds %s)", ErrFormat, strings.Join(checkpointKeys, ", "), strings.Join(keys, ", "))
}

// findStateDict is stateDictIn's search, at most depth dicts deep (nil:
// none).
func findStateDict(d map[string]any, depth int) map[string]any {
	if depth == 0 {
		return nil
	}
	for _, k := range checkpointKeys {
		if inner, ok := asDict(d[k]); ok {
			if sd := findStateDict(inner, depth-1); sd != nil {
				return sd
			}
		}
	}
	if holdsTensors(d) {
		return d
	}
	return nil
}

func holdsTensors(d map[string]any) bool {
	for _, v := range d {
		if _, ok := v.(*pytorch.Tensor); ok {
			return true
		}
	}
	return false
}

// pthLoader is the unpickler of the .pth at path by its first bytes:
// torch.save's zip format or the legacy one (nil: not a .pth, so
// safetensors or nothing).
func pthLoader(path string) (func(path string, size int64) (any, error), error) {
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
	switch {
	case bytes.Equal(head, []byte("PK\x03\x04")):
		return loadPth, nil
	case isLegacyPth(head):
		return func(path string, size int64) (any, error) {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			return loadLegacyPth(data)
		}, nil
	}
	return nil, nil
}

// loadTopDict unpickles a .pth's top-level dict.
func loadTopDict(path string, size int64, load func(path string, size int64) (any, error)) (map[string]any, error) {
	obj, err := load(path, size)
	if errors.Is(err, ErrFormat) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	d, ok := asDict(obj)
	if !ok {
		return nil, fmt.Errorf("%w: the file holds a %T, want a dict of tensors (save model.state_dict(), not the model)", ErrFormat, obj)
	}
	return d, nil
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
// contiguous little-endian checkpoint.Tensor. Its shape is checked against
// its storage before anything is allocated: no negative size, stride or
// offset, no more elements than the storage holds (a zero stride would
// expand 4 floats to any size), no element read past it.
func tensorOf(name string, pt *pytorch.Tensor, budget *uint64) (checkpoint.Tensor, error) {
	t := checkpoint.Tensor{Name: name}
	var storageLen int
	var elem uint64
	var put func(dst []byte, j int) // storage element j, little-endian, into dst
	switch s := pt.Source.(type) {
	case *pytorch.FloatStorage:
		t.DType, storageLen, elem = "F32", len(s.Data), 4
		put = func(dst []byte, j int) { binary.LittleEndian.PutUint32(dst, math.Float32bits(s.Data[j])) }
	case *pytorch.LongStorage:
		t.DType, storageLen, elem = "I64", len(s.Data), 8
		put = func(dst []byte, j int) { binary.LittleEndian.PutUint64(dst, uint64(s.Data[j])) }
	default:
		return t, fmt.Errorf("%w: tensor %s has storage %T (float32 and int64 are read; convert with .float())", ErrFormat, name, pt.Source)
	}
	n, err := viewElements(pt, storageLen)
	if err != nil {
		return t, fmt.Errorf("%w: tensor %s: %v", ErrFormat, name, err)
	}
	if uint64(n) > *budget/elem {
		return t, fmt.Errorf("%w: tensor %s: the tensors take more memory than a file of this size can hold (many views of one storage)", ErrFormat, name)
	}
	*budget -= uint64(n) * elem
	for _, s := range pt.Size {
		t.Shape = append(t.Shape, int64(s))
	}
	t.Data = make([]byte, uint64(n)*elem)
	eachIndex(pt.Size, pt.Stride, pt.StorageOffset, n, func(i, j int) { put(t.Data[uint64(i)*elem:], j) })
	return t, nil
}

// viewElements is the number of elements of a tensor view over a storage
// of storageLen, refused when the view does not fit in it.
func viewElements(pt *pytorch.Tensor, storageLen int) (int, error) {
	if len(pt.Stride) != len(pt.Size) {
		return 0, fmt.Errorf("%d sizes, %d strides", len(pt.Size), len(pt.Stride))
	}
	if pt.StorageOffset < 0 {
		return 0, fmt.Errorf("storage offset %d", pt.StorageOffset)
	}
	n := 1
	for d, s := range pt.Size {
		if s < 0 || pt.Stride[d] < 0 {
			return 0, fmt.Errorf("size %v, stride %v", pt.Size, pt.Stride)
		}
		if s > 0 && n > storageLen/s {
			return 0, fmt.Errorf("size %v holds more elements than its storage's %d (overlapping strides, e.g. an expanded view: save it with .contiguous())", pt.Size, storageLen)
		}
		n *= s
	}
	if n == 0 {
		return 0, nil
	}
	p := pt.StorageOffset
	for d, s := range pt.Size {
		if pt.Stride[d] > (storageLen-p)/max(1, s-1) && s > 1 {
			return 0, fmt.Errorf("size %v, stride %v from offset %d read past its storage of %d", pt.Size, pt.Stride, pt.StorageOffset, storageLen)
		}
		p += (s - 1) * pt.Stride[d]
	}
	if p >= storageLen {
		return 0, fmt.Errorf("size %v, stride %v from offset %d read past its storage of %d", pt.Size, pt.Stride, pt.StorageOffset, storageLen)
	}
	return n, nil
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
