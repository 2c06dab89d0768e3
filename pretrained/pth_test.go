package pretrained

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pthTensor is one tensor of a hand-made .pth: numel is what its storage
// declares, data what its record holds.
type pthTensor struct {
	name           string
	numel          int32
	offset         int32
	size, stride   []int32
	data           []float32
	storageClass   string // default FloatStorage
	recordOverride []byte // nil: data's bytes
	key            string // the storage's record ("": the tensor's index)
	legacy         bool   // the legacy format's persistent ID (a view field more)
}

// pickleOf writes the protocol-2 pickle torch.save writes for a state dict
// of float tensors (each storage keyed by its index).
func pickleOf(ts []pthTensor) []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte('X')
		binary.Write(&b, binary.LittleEndian, uint32(len(s)))
		b.WriteString(s)
	}
	ints := func(v []int32) {
		b.WriteByte('(')
		for _, x := range v {
			b.WriteByte('J')
			binary.Write(&b, binary.LittleEndian, x)
		}
		b.WriteByte('t')
	}
	b.Write([]byte{0x80, 2, '}'})
	for i, t := range ts {
		class := t.storageClass
		if class == "" {
			class = "FloatStorage"
		}
		str(t.name)
		b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
		b.WriteByte('(')
		str("storage")
		b.WriteString("ctorch\n" + class + "\n")
		key := t.key
		if key == "" {
			key = string(rune('0' + i))
		}
		str(key)
		str("cpu")
		b.WriteByte('J')
		binary.Write(&b, binary.LittleEndian, t.numel)
		if t.legacy {
			b.WriteByte('N') // no view
		}
		b.WriteString("tQ")
		b.WriteByte('J')
		binary.Write(&b, binary.LittleEndian, t.offset)
		ints(t.size)
		ints(t.stride)
		b.WriteByte(0x89)
		b.WriteString("ccollections\nOrderedDict\n)Rt")
		b.WriteString("Rs")
	}
	b.WriteByte('.')
	return b.Bytes()
}

// writePth writes a .pth (zip, stored records as torch.save writes them)
// with the given data.pkl.
func writePth(t testing.TB, pkl []byte, ts []pthTensor) string {
	t.Helper()
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	put := func(name string, b []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	put("archive/data.pkl", pkl)
	for i, x := range ts {
		rec := x.recordOverride
		if rec == nil {
			for _, f := range x.data {
				rec = binary.LittleEndian.AppendUint32(rec, math.Float32bits(f))
			}
		}
		put("archive/data/"+string(rune('0'+i)), rec)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "w.pth")
	if err := os.WriteFile(p, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A hand-made state dict reads as torch.save's does (a transposed view
// included), so the hostile ones below differ from it only in what they
// declare.
func TestHandMadePthReads(t *testing.T) {
	ts := []pthTensor{
		{name: "fc.weight", numel: 6, size: []int32{2, 3}, stride: []int32{3, 1}, data: []float32{1, 2, 3, 4, 5, 6}},
		{name: "fc.bias", numel: 6, size: []int32{3, 2}, stride: []int32{1, 3}, data: []float32{1, 2, 3, 4, 5, 6}},
	}
	got, err := Read(writePth(t, pickleOf(ts), ts))
	if err != nil {
		t.Fatal(err)
	}
	w, b := got["fc.weight"], got["fc.bias"]
	if w.DType != "F32" || len(w.Data) != 24 || math.Float32frombits(binary.LittleEndian.Uint32(w.Data[20:])) != 6 {
		t.Errorf("fc.weight %+v", w)
	}
	// The transposed view [[1,4],[2,5],[3,6]]: its second element is 4.
	if math.Float32frombits(binary.LittleEndian.Uint32(b.Data[4:])) != 4 {
		t.Errorf("fc.bias (a transposed view) read as %v", b.Data)
	}
}

// Hostile .pth files a sweep spec can name: each is refused as not a state
// dict, in one line, without allocating what it declares (a 600-byte file
// declaring 2^30 floats made the reader allocate 4 GB, a zero stride
// expanded 4 floats to 2^28, a negative size panicked).
func TestHostilePthIsRefusedWithoutAllocating(t *testing.T) {
	four := []float32{1, 2, 3, 4}
	cases := map[string][]pthTensor{
		"a 2^30-float storage in a small file": {{name: "w", numel: 1 << 30, size: []int32{1 << 15, 1 << 15}, stride: []int32{1 << 15, 1}, data: four}},
		"a zero stride expanding 4 floats":     {{name: "w", numel: 4, size: []int32{1 << 28}, stride: []int32{0}, data: four}},
		"a negative size":                      {{name: "w", numel: 4, size: []int32{-4}, stride: []int32{1}, data: four}},
		"a negative storage":                   {{name: "w", numel: -4, size: []int32{4}, stride: []int32{1}, data: four}},
		"a view past its storage":              {{name: "w", numel: 4, offset: 2, size: []int32{4}, stride: []int32{1}, data: four}},
		"a stride past its storage":            {{name: "w", numel: 4, size: []int32{2, 2}, stride: []int32{1 << 30, 1}, data: four}},
		"a negative offset":                    {{name: "w", numel: 4, offset: -1, size: []int32{4}, stride: []int32{1}, data: four}},
		"an int64 storage of 2^28 in 16 bytes": {{name: "w", numel: 1 << 28, size: []int32{2}, stride: []int32{1}, data: four, storageClass: "LongStorage"}},
	}
	for what, ts := range cases {
		t.Run(what, func(t *testing.T) {
			p := writePth(t, pickleOf(ts), ts)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Read(p)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFormat) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v; want one line of ErrFormat", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("allocated %d MB reading a %s", grew>>20, what)
			}
			t.Log(err)
		})
	}
}

// The three hostile files, kept in testdata for the end-to-end
// test of a worker that is handed them (integration): they are what this
// package's writer makes of them (RESOMAP_UPDATE_GOLDEN=1 rewrites them),
// and each is refused.
func TestHostileTestdataIsCurrent(t *testing.T) {
	four := []float32{1, 2, 3, 4}
	for name, ts := range map[string][]pthTensor{
		"storage_2e30.pth":  {{name: "w", numel: 1 << 30, size: []int32{1 << 15, 1 << 15}, stride: []int32{1 << 15, 1}, data: four}},
		"zero_stride.pth":   {{name: "w", numel: 4, size: []int32{1 << 28}, stride: []int32{0}, data: four}},
		"negative_size.pth": {{name: "w", numel: 4, size: []int32{-4}, stride: []int32{1}, data: four}},
	} {
		made, err := os.ReadFile(writePth(t, pickleOf(ts), ts))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("testdata", "hostile", name)
		if os.Getenv("RESOMAP_UPDATE_GOLDEN") != "" {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, made, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		kept, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(kept, made) {
			t.Errorf("%s: %v; not what the writer makes (RESOMAP_UPDATE_GOLDEN=1 rewrites it)", p, err)
		}
		if _, err := Read(p); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want refused", p, err)
		}
	}
}

// Pickles whose lengths reach past their end are refused before the
// unpickler allocates them (gopickle allocates a declared length first).
func TestPickleLengthsAreCheckedBeforeUnpickling(t *testing.T) {
	for what, pkl := range map[string][]byte{
		"a 4 GB unicode":  append([]byte{0x80, 2, 'X'}, 0xff, 0xff, 0xff, 0xff),
		"a 2^60 bytes8":   append([]byte{0x80, 4, 0x8e}, 0, 0, 0, 0, 0, 0, 0, 0x10),
		"a 2^40 frame":    append([]byte{0x80, 4, 0x95}, 0, 0, 0, 0, 0, 1, 0, 0),
		"no stop":         {0x80, 2, '}'},
		"an unknown op":   {0x80, 2, 0xff, '.'},
		"a cut BININT":    {0x80, 2, 'J', 1},
		"an open GLOBAL":  []byte("ctorch\nFloat"),
		"a cut BINSTRING": {'T', 1, 0},
		// A whole pickled model names its classes: refused by name.
		"a pickled model": []byte("\x80\x02ctorchvision.models.resnet\nResNet\n)\x81."),
		// A call of what is not a class (gopickle prints it, and memo
		// references make it of any size): a tuple called.
		"a tuple called": []byte("\x80\x02(X\x01\x00\x00\x00at\x94h\x00)R."),
		// OrderedDict called with arguments (printed by gopickle too).
		"OrderedDict(x)":  []byte("\x80\x02ccollections\nOrderedDict\n(X\x01\x00\x00\x00atR."),
		"marks 65 deep":   append(append([]byte{0x80, 2}, bytes.Repeat([]byte{'('}, 65)...), '.'),
		"a GET never put": []byte("\x80\x02h\x07."),
		"items on a list": []byte("\x80\x02]X\x01\x00\x00\x00aX\x01\x00\x00\x00bs."),
	} {
		p := writePth(t, pkl, nil)
		_, err := Read(p)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v; want ErrFormat", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
	if err := scanPickle(pickleOf([]pthTensor{{name: "w", numel: 1, size: []int32{1}, stride: []int32{1}}})); err != nil {
		t.Errorf("a state dict's pickle: %v", err)
	}
}

// FuzzReadPth: no .pth makes Read panic, hang or allocate beyond the
// file's size; what it reads fits in the file. The corpus is a hand-made
// state dict and the hostile files above; crashers found are kept under
// testdata/fuzz/FuzzReadPth.
func FuzzReadPth(f *testing.F) {
	four := []float32{1, 2, 3, 4}
	for _, ts := range [][]pthTensor{
		{{name: "w", numel: 4, size: []int32{2, 2}, stride: []int32{2, 1}, data: four}},
		{{name: "w", numel: 1 << 30, size: []int32{4}, stride: []int32{1}, data: four}},
		{{name: "w", numel: 4, size: []int32{1 << 28}, stride: []int32{0}, data: four}},
	} {
		var z bytes.Buffer
		p := writePth(f, pickleOf(ts), ts)
		b, _ := os.ReadFile(p)
		z.Write(b)
		f.Add(z.Bytes())
		f.Add(legacyPth(ts))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.pth")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := Read(p)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(64*len(b))+64<<20 {
			t.Fatalf("allocated %d bytes reading %d", grew, len(b))
		}
		if err != nil {
			return
		}
		for name, ts := range got {
			if len(ts.Data) > 2*len(b) {
				t.Errorf("tensor %s holds %d bytes from a %d-byte file", name, len(ts.Data), len(b))
			}
		}
	})
}

// Views of one storage each copy it out: many of them in a small file are
// refused before they take memory beyond the file's size; a long integer
// (quadratic to decode) and a compressed storage record are refused too.
func TestPthBoundsItsOutputAndArguments(t *testing.T) {
	data := make([]float32, 1<<16) // a 256 KB storage
	one := pthTensor{name: "w", numel: 1 << 16, size: []int32{1 << 16}, stride: []int32{1}, data: data}
	many := []pthTensor{one}
	for i := range 200 { // 200 more views of it: 50 MB from a file of 256 KB
		v := one
		v.name, v.key, v.data = fmt.Sprintf("w%03d", i), "0", nil
		many = append(many, v)
	}
	p := writePth(t, pickleOf(many), many[:1])
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(p)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "many views of one storage") {
		t.Errorf("200 views of one storage: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("allocated %d MB reading 200 views of a 256 KB storage", grew>>20)
	}
	long := append([]byte{0x80, 2, 0x8b}, 0, 0, 1, 0) // LONG4 of 64 KB
	long = append(append(long, make([]byte, 1<<16)...), '.')
	if _, err := Read(writePth(t, long, nil)); !errors.Is(err, ErrFormat) {
		t.Errorf("a 64 KB integer: %v", err)
	}
}
