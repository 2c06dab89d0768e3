package pretrained

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// legacyPth writes the legacy .pth torch.save wrote before PyTorch 1.6:
// magic number, protocol version, system info, the object, the storage
// keys, then each storage's element count and bytes.
func legacyPth(ts []pthTensor) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'})
	b.Write([]byte{0x80, 2, 'M', 0xe9, 0x03, '.'})
	b.Write([]byte{0x80, 2, '}', '.'})
	legacy := make([]pthTensor, len(ts))
	for i, t := range ts {
		t.legacy = true
		legacy[i] = t
	}
	b.Write(pickleOf(legacy))
	b.Write([]byte{0x80, 2, '('})
	for i := range ts {
		b.WriteByte('X')
		binary.Write(&b, binary.LittleEndian, uint32(1))
		b.WriteByte(byte('0' + i))
	}
	b.Write([]byte{'l', '.'})
	for _, t := range ts {
		binary.Write(&b, binary.LittleEndian, int64(t.numel))
		if t.recordOverride != nil {
			b.Write(t.recordOverride)
			continue
		}
		binary.Write(&b, binary.LittleEndian, t.data)
	}
	return b.Bytes()
}

// A hand-made legacy .pth reads as the zip format does; one whose storage
// declares more than the file holds, or whose element count disagrees
// with the object's, is refused before allocating.
func TestLegacyPthReadsAndIsChecked(t *testing.T) {
	ts := []pthTensor{
		{name: "fc.weight", numel: 6, size: []int32{2, 3}, stride: []int32{3, 1}, data: []float32{1, 2, 3, 4, 5, 6}},
		{name: "fc.bias", numel: 6, size: []int32{3, 2}, stride: []int32{1, 3}, data: []float32{1, 2, 3, 4, 5, 6}},
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := Read(write("legacy.pth", legacyPth(ts)))
	if err != nil {
		t.Fatal(err)
	}
	if b := got["fc.bias"]; math.Float32frombits(binary.LittleEndian.Uint32(b.Data[4:])) != 4 {
		t.Errorf("fc.bias (a transposed view) read as %v", b.Data)
	}
	huge := []pthTensor{{name: "w", numel: 1 << 30, size: []int32{4}, stride: []int32{1}, data: []float32{1, 2, 3, 4}}}
	for name, b := range map[string][]byte{
		"huge.pth":      legacyPth(huge),
		"truncated.pth": legacyPth(ts)[:len(legacyPth(ts))-3],
	} {
		_, err := Read(write(name, b))
		if !errors.Is(err, ErrFormat) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line of ErrFormat", name, err)
		}
	}
}
