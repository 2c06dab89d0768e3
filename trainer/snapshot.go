package trainer

import (
	"fmt"
	"strings"

	"github.com/resomap/resomap/checkpoint"
)

const optimPrefix = "optimizer."

var dtypeNames = map[DType]string{F32: "F32", F64: "F64", I64: "I64", BF16: "BF16", F16: "F16", I32: "I32", U8: "U8"}

// snapshot copies the model's tensors (torchvision keys) and optimiser state
// out of libtorch as two safetensors files.
func snapshot(m *Model, meta map[string]string) (modelST, optimST []byte, err error) {
	var mt, ot []checkpoint.Tensor
	for i, ti := range m.tensors {
		buf := make([]byte, ti.NBytes)
		if err := m.ReadTensor(i, buf); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ti.Name, err)
		}
		t := checkpoint.Tensor{Name: ti.Name, DType: dtypeNames[ti.DType], Shape: ti.Shape, Data: buf}
		if name, ok := strings.CutPrefix(ti.Name, optimPrefix); ok {
			t.Name = name
			ot = append(ot, t)
		} else {
			mt = append(mt, t)
		}
	}
	if modelST, err = checkpoint.EncodeSafetensors(mt, meta); err != nil {
		return nil, nil, err
	}
	if optimST, err = checkpoint.EncodeSafetensors(ot, meta); err != nil {
		return nil, nil, err
	}
	return modelST, optimST, nil
}

// restore loads both files into the model. Every tensor must be present with
// the same dtype and shape, and nothing else may be: anything else is a
// checkpoint of another model or optimiser.
func restore(m *Model, modelST, optimST []byte) error {
	want := map[string]checkpoint.Tensor{}
	for _, f := range []struct {
		data   []byte
		prefix string
	}{{modelST, ""}, {optimST, optimPrefix}} {
		ts, _, err := checkpoint.DecodeSafetensors(f.data)
		if err != nil {
			return fmt.Errorf("%w: %v", checkpoint.ErrCorrupt, err)
		}
		for _, t := range ts {
			want[f.prefix+t.Name] = t
		}
	}
	if len(want) != len(m.tensors) {
		return fmt.Errorf("%w: checkpoint has %d tensors, model %s with this optimiser has %d", checkpoint.ErrForeign, len(want), m.spec.Name, len(m.tensors))
	}
	for i, ti := range m.tensors {
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
	}
	return nil
}

// Export returns the model's tensors (torchvision state_dict keys) and the
// optimiser's state as two safetensors files.
func (m *Model) Export() (modelST, optimST []byte, err error) {
	return snapshot(m, map[string]string{"format": "pt", "model": m.spec.Name})
}

// Import loads tensors written by Export (or a checkpoint's two files).
func (m *Model) Import(modelST, optimST []byte) error { return restore(m, modelST, optimST) }
