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
	miscounted := legacyPth(ts)
	binary.LittleEndian.PutUint64(miscounted[len(miscounted)-6*4-8:], 5) // the last storage: 5 elements, the object says 6
	for name, b := range map[string][]byte{
		"huge.pth":       legacyPth(huge),
		"truncated.pth":  legacyPth(ts)[:len(legacyPth(ts))-3],
		"miscounted.pth": miscounted,
	} {
		_, err := Read(write(name, b))
		if !errors.Is(err, ErrFormat) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line of ErrFormat", name, err)
		}
	}
}

// Pickles that would make gopickle print an object of any size (its error
// messages format what they refuse) are refused by the scan first: a
// BUILD on a plain dict, a dict key that is a tuple of references to one
// large bytes object, and in a legacy file a protocol version that is
// such a tuple.
func TestPicklesThatPrintHugeObjectsAreRefused(t *testing.T) {
	bigTuple := func(b *bytes.Buffer, refs int) {
		b.WriteString("B")
		binary.Write(b, binary.LittleEndian, uint32(60000))
		b.Write(bytes.Repeat([]byte{0xff}, 60000))
		b.WriteString("q\x01(")
		for range refs {
			b.WriteString("h\x01")
		}
		b.WriteString("t")
	}
	var buildOnDict, tupleKey bytes.Buffer
	buildOnDict.WriteString("\x80\x02}(X\x01\x00\x00\x00kq\x00")
	bigTuple(&buildOnDict, 1000)
	buildOnDict.WriteString("u}b.")
	tupleKey.WriteString("\x80\x02ccollections\nOrderedDict\n)R}(")
	bigTuple(&tupleKey, 1000)
	tupleKey.WriteString("K\x01ub.")
	for name, p := range map[string][]byte{"BUILD on a dict": buildOnDict.Bytes(), "a tuple as a dict key": tupleKey.Bytes()} {
		if err := scanPickle(p); !errors.Is(err, errPickle) {
			t.Errorf("%s: %v, want the scan to refuse it", name, err)
		}
	}
	var legacy bytes.Buffer
	legacy.Write([]byte{0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'})
	legacy.WriteString("\x80\x02")
	bigTuple(&legacy, 1000)
	legacy.WriteString(".")
	p := filepath.Join(t.TempDir(), "w.pth")
	if err := os.WriteFile(p, legacy.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p)
	if !errors.Is(err, ErrFormat) || len(err.Error()) > 500 {
		t.Errorf("a legacy file whose version is a huge tuple: %.300v (%d bytes), want a short refusal", err, len(err.Error()))
	}
}
