package trainer

import (
	"fmt"
	"strings"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/torch"
)

const optimPrefix = "optimizer."

var dtypeNames = map[torch.DType]string{torch.F32: "F32", torch.F64: "F64", torch.I64: "I64", torch.BF16: "BF16", torch.F16: "F16", torch.I32: "I32", torch.U8: "U8"}

// snapshot copies the model's tensors (torchvision keys) and optimiser state
// out of libtorch as two safetensors files, each tensor straight into its
// file's buffer.
func snapshot(m *torch.Model, meta map[string]string) (modelST, optimST []byte, err error) {
	var mt, ot []checkpoint.Tensor
	var mi, oi []int // index in m.Tensors() of each
	for i, ti := range m.Tensors() {
		t := checkpoint.Tensor{Name: ti.Name, DType: dtypeNames[ti.DType], Shape: ti.Shape}
		if name, ok := strings.CutPrefix(ti.Name, optimPrefix); ok {
			t.Name = name
			ot, oi = append(ot, t), append(oi, i)
		} else {
			mt, mi = append(mt, t), append(mi, i)
		}
	}
	read := func(index []int) func(int, []byte) error {
		return func(k int, dst []byte) error {
			if err := m.ReadTensor(index[k], dst); err != nil {
				return fmt.Errorf("read %s: %w", m.Tensors()[index[k]].Name, err)
			}
			return nil
		}
	}
	if modelST, err = checkpoint.BuildSafetensors(mt, meta, read(mi)); err != nil {
		return nil, nil, err
	}
	if optimST, err = checkpoint.BuildSafetensors(ot, meta, read(oi)); err != nil {
		return nil, nil, err
	}
	return modelST, optimST, nil
}

// restore loads both files into the model. Every tensor must be present with
// the same dtype and shape, and nothing else may be: anything else is a
// checkpoint of another model or optimiser.
func restore(m *torch.Model, modelST, optimST []byte) error {
	return writeTensors(m, false, modelST, optimST)
}

// restoreWeights writes only the model's own tensors from modelST (the
// optimiser's state is not needed to evaluate).
func restoreWeights(m *torch.Model, modelST []byte) error {
	return writeTensors(m, true, modelST, nil)
}

// writeTensors writes the tensors of the safetensors files (model, then
// optimiser) into m, checking names, types and shapes; weightsOnly leaves
// the optimiser's state as it is.
func writeTensors(m *torch.Model, weightsOnly bool, modelST, optimST []byte) error {
	want := map[string]checkpoint.Tensor{}
	for _, f := range []struct {
		data   []byte
		prefix string
	}{{modelST, ""}, {optimST, optimPrefix}} {
		if f.data == nil && weightsOnly {
			continue
		}
		ts, _, err := checkpoint.DecodeSafetensors(f.data)
		if err != nil {
			return fmt.Errorf("%w: %v", checkpoint.ErrCorrupt, err)
		}
		for _, t := range ts {
			want[f.prefix+t.Name] = t
		}
	}
	written := 0
	for i, ti := range m.Tensors() {
		if weightsOnly && strings.HasPrefix(ti.Name, optimPrefix) {
			continue
		}
		t, ok := want[ti.Name]
		if !ok {
			return fmt.Errorf("%w: tensor %s missing", checkpoint.ErrForeign, ti.Name)
		}
		if t.DType != dtypeNames[ti.DType] || fmt.Sprint(t.Shape) != fmt.Sprint(ti.Shape) {
			return fmt.Errorf("%w: tensor %s is %s%v, model has %s%v", checkpoint.ErrForeign, ti.Name, t.DType, t.Shape, dtypeNames[ti.DType], ti.Shape)
		}
		if err := m.WriteTensor(i, t.Data); err != nil {
			return fmt.Errorf("write %s: %w", ti.Name, err)
		}
		written++
	}
	if written != len(want) {
		return fmt.Errorf("%w: checkpoint has %d tensors, model %s takes %d", checkpoint.ErrForeign, len(want), m.Spec().Name, written)
	}
	return nil
}

// Export returns the model's tensors (torchvision state_dict keys) and the
// optimiser's state as two safetensors files.
func Export(m *torch.Model) (modelST, optimST []byte, err error) {
	return snapshot(m, map[string]string{"format": "pt", "model": m.Spec().Name})
}

// Import loads tensors written by Export (or a checkpoint's two files).
func Import(m *torch.Model, modelST, optimST []byte) error { return restore(m, modelST, optimST) }
