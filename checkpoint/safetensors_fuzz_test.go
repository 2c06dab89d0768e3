package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"testing"
)

// FuzzDecodeSafetensors: no input panics or makes the reader allocate
// beyond it; every tensor it returns holds exactly the bytes its shape and
// dtype say (counted without overflow), and it encodes back to a file
// that decodes to the same tensors.
func FuzzDecodeSafetensors(f *testing.F) {
	good, _ := EncodeSafetensors([]Tensor{
		{Name: "conv1.weight", DType: "F32", Shape: []int64{2, 1, 1, 1}, Data: make([]byte, 8)},
		{Name: "n", DType: "I64", Shape: []int64{}, Data: make([]byte, 8)},
	}, map[string]string{"format": "pt"})
	f.Add(good)
	// A shape whose byte count overflows int64 back to 0 (4 * 2^62).
	header := []byte(`{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}`)
	overflow := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	f.Add(append(overflow, header...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, meta, err := DecodeSafetensors(b)
		if err != nil {
			return
		}
		for _, x := range ts {
			want := big.NewInt(dtypeSize[x.DType])
			for _, d := range x.Shape {
				want.Mul(want, big.NewInt(d))
			}
			if want.Cmp(big.NewInt(int64(len(x.Data)))) != 0 {
				t.Fatalf("%s: %s %v holds %d bytes, its shape says %s", x.Name, x.DType, x.Shape, len(x.Data), want)
			}
		}
		again, err := EncodeSafetensors(ts, meta)
		if err != nil {
			t.Fatalf("decoded tensors do not encode: %v", err)
		}
		back, _, err := DecodeSafetensors(again)
		if err != nil || len(back) != len(ts) {
			t.Fatalf("re-encoded file: %d tensors, %v", len(back), err)
		}
		for i := range back {
			if back[i].Name != ts[i].Name || !bytes.Equal(back[i].Data, ts[i].Data) {
				t.Fatalf("tensor %s changed in a round trip", ts[i].Name)
			}
		}
	})
}
