package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestSafetensorsRoundTripAndDeterminism(t *testing.T) {
	in := []Tensor{
		{Name: "layer1.0.bn1.num_batches_tracked", DType: "I64", Shape: []int64{}, Data: make([]byte, 8)},
		{Name: "conv1.weight", DType: "F32", Shape: []int64{2, 1, 1, 1}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	}
	a, err := EncodeSafetensors(in, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := EncodeSafetensors([]Tensor{in[1], in[0]}, map[string]string{"format": "pt"})
	if !bytes.Equal(a, b) {
		t.Fatal("the same tensors encode to different bytes")
	}
	if hl := binary.LittleEndian.Uint64(a); (8+hl)%8 != 0 {
		t.Fatalf("data not aligned: header %d", hl)
	}
	out, meta, err := DecodeSafetensors(a)
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "pt" || len(out) != 2 || out[0].Name != "conv1.weight" || !bytes.Equal(out[0].Data, in[1].Data) || len(out[1].Shape) != 0 {
		t.Fatalf("decoded %+v %v", out, meta)
	}
	if _, err := EncodeSafetensors([]Tensor{{Name: "x", DType: "F32", Shape: []int64{3}, Data: make([]byte, 4)}}, nil); err == nil {
		t.Fatal("size mismatch accepted")
	}
}

func TestMalformedSafetensorsAreRefused(t *testing.T) {
	good, _ := EncodeSafetensors([]Tensor{{Name: "w", DType: "F32", Shape: []int64{4}, Data: make([]byte, 16)}}, nil)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"huge header":    append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, good[8:]...),
		"truncated data": good[:len(good)-4],
		"not json":       append(append([]byte{}, good[:8]...), bytes.Repeat([]byte("x"), len(good)-8)...),
	} {
		if _, _, err := DecodeSafetensors(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
