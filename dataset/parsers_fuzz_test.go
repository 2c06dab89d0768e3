package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/resomap/resomap/dataset/turbojpeg"
)

// idxFile is an IDX file of unsigned bytes with dims and data.
func idxFile(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

// FuzzDecodeIDX: no input panics, and memory follows the bytes that
// arrive: data comes back only when the file holds all its dimensions
// declare.
func FuzzDecodeIDX(f *testing.F) {
	f.Add(idxFile([]uint32{2, 2, 2}, make([]byte, 8)), uint8(3))
	f.Add(idxFile([]uint32{3}, []byte{1, 2, 3}), uint8(1))
	f.Add(idxFile([]uint32{1 << 24, 1 << 10, 1}, nil), uint8(3)) // declares 16 GiB in 16 bytes
	f.Add(idxFile([]uint32{1 << 24, 1 << 24, 1 << 24}, nil), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, dims uint8) {
		want := 1 + int(dims)%3
		d, data, err := decodeIDX(bytes.NewReader(b), want)
		if err != nil {
			return
		}
		n := 1
		for _, x := range d {
			n *= x
		}
		if len(d) != want || len(data) != n || n > len(b) {
			t.Fatalf("dims %v, %d data bytes from a %d-byte file", d, len(data), len(b))
		}
	})
}

// The header that declares 16 GiB in 16 bytes fails at once, naming what
// was missing, without allocating what it declares.
func TestIDXDeclaringMoreThanItHoldsIsRefused(t *testing.T) {
	short := idxFile([]uint32{1 << 24, 1 << 10, 1}, []byte{1, 2})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := decodeIDX(bytes.NewReader(short), 3)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("a short file: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2*idxFirstRead {
		t.Fatalf("an 18-byte file declaring 16 GiB allocated %d bytes", grew)
	}
	// A plain file is checked against its size before anything is
	// allocated; a gzipped one holding 64 MiB of zeros (65 KB) and
	// declaring 16 GiB costs what it inflates to, not what it declares.
	dir := t.TempDir()
	plain := filepath.Join(dir, "train-images-idx3-ubyte")
	if err := os.WriteFile(plain, short, 0o644); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&before)
	_, _, err = readIDX(plain, 3)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "the file holds 2") || after.TotalAlloc-before.TotalAlloc > 4<<20 {
		t.Fatalf("a plain file declaring 16 GiB: %v, %d bytes allocated", err, after.TotalAlloc-before.TotalAlloc)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(idxFile([]uint32{1 << 24, 1 << 10, 1}, nil))
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	gzipped := filepath.Join(dir, "bomb.gz")
	if err := os.WriteFile(gzipped, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&before)
	_, _, err = readIDX(gzipped, 3)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; err == nil || grew > 512<<20 {
		t.Fatalf("a %d-byte gzip declaring 16 GiB holding 64 MiB: %v, %d bytes allocated", gz.Len(), err, grew)
	}
	if _, _, err := decodeIDX(bytes.NewReader(idxFile([]uint32{1 << 24, 1 << 24, 1 << 24}, nil)), 3); err == nil || !strings.Contains(err.Error(), "declare over") {
		t.Fatalf("dimensions whose product overflows: %v", err)
	}
}

// bomb is an image file of w x h pixels whose header says w x h but whose
// bytes are those of a 1 x 1 image: format "png" or "jpeg".
func bomb(t testing.TB, format string, w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.Gray{128})
	var buf bytes.Buffer
	switch format {
	case "png":
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		// IHDR's width and height follow the signature (8), its length (4)
		// and type (4); its CRC covers type and data (13 bytes).
		binary.BigEndian.PutUint32(b[16:], uint32(w))
		binary.BigEndian.PutUint32(b[20:], uint32(h))
		binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
		return b
	default:
		if err := jpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		i := bytes.Index(b, []byte{0xFF, 0xC0}) // SOF0: length, precision, height, width
		binary.BigEndian.PutUint16(b[i+5:], uint16(h))
		binary.BigEndian.PutUint16(b[i+7:], uint16(w))
		return b
	}
}

// A few-kilobyte file declaring 60,000 x 60,000 pixels (14 GB decoded) is
// bad data, refused from its header, as PIL refuses it.
func TestDecompressionBombIsBadData(t *testing.T) {
	for _, format := range []string{"png", "jpeg"} {
		_, err := decodeImage("bomb."+format, bomb(t, format, 60000, 60000))
		if !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("%s bomb: %v, want bad data naming the bomb", format, err)
		}
		if _, err := decodeImage("small."+format, bomb(t, format, 1, 1)); err != nil {
			t.Errorf("a 1 x 1 %s: %v", format, err)
		}
	}
}

// FuzzDecodeImage: no image file panics the decoder or decodes to more
// than MaxImagePixels.
func FuzzDecodeImage(f *testing.F) {
	f.Add(bomb(f, "png", 1, 1))
	f.Add(bomb(f, "jpeg", 1, 1))
	f.Add(bomb(f, "png", 60000, 60000))
	f.Add(bomb(f, "jpeg", 60000, 60000))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decodeImage("fuzz", b)
		if err != nil {
			if !errors.Is(err, ErrBadData) {
				t.Fatalf("an error that is not bad data: %v", err)
			}
			return
		}
		if r := img.Bounds(); int64(r.Dx())*int64(r.Dy()) > MaxImagePixels {
			t.Fatalf("decoded %v", r)
		}
	})
}

// A photo folder's bomb is refused from its header by either decoder (the
// TurboJPEG path reads the size first too), and the Go resizer's path.
func TestDecompressionBombInAFolderIsBadDataWithEitherDecoder(t *testing.T) {
	dec, err := turbojpeg.Open()
	if err != nil {
		t.Fatalf("libturbojpeg0 is part of the test set-up (make deps): %v", err)
	}
	p := filepath.Join(t.TempDir(), "bomb.jpg")
	if err := os.WriteFile(p, bomb(t, "jpeg", 60000, 60000), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, jd := range map[string]JPEGDecoder{"turbojpeg": dec, "go": nil} {
		split := &fileSplit{files: []string{p}, labels: []int{0}, opts: Options{JPEG: jd}}
		if _, _, err := split.photo(0, 32, nil); !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("%s: photo: %v", name, err)
		}
		if _, err := split.Resize(0, 32, make([]byte, 3*32*32)); !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("%s: resize: %v", name, err)
		}
	}
}

// A progressive CMYK JPEG under the pixel limit still takes more to decode
// than MaxDecodeBytes (4 bytes of coefficients per pixel and component): it
// is bad data from its header, before Go's decoder allocates; a baseline
// one of the same size is within the bound (and fails only as the
// truncated file it is). Its frame is found past other segments.
func TestProgressiveCMYKJPEGIsBoundedByItsMemory(t *testing.T) {
	frame := func(sof byte, components int) []byte {
		b := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0} // SOI, JFIF APP0
		seg := []byte{0xFF, sof, 0, byte(8 + 3*components), 8, 0x27, 0x10, 0x27, 0x10, byte(components)}  // 10000 x 10000
		for c := range components {
			seg = append(seg, byte(c+1), 0x11, 0)
		}
		return append(b, seg...)
	}
	if planes, p, ok := jpegFrame(frame(0xC2, 4)); !ok || planes != 4 || !p {
		t.Fatalf("jpegFrame: %.1f planes, progressive %v, found %v", planes, p, ok)
	}
	// Bytes Go's decoder skips between segments do not hide the frame.
	stray := frame(0xC2, 4)
	stray = append(stray[:20:20], append([]byte{0x00, 0xFF, 0x00, 0x42}, stray[20:]...)...)
	// Nor a stray byte right after the start marker, where Go's decoder
	// skips it too (its magic is FF D8 alone).
	early := append([]byte{0xFF, 0xD8, 0x00}, frame(0xC2, 4)[2:]...)
	for what, b := range map[string][]byte{"progressive CMYK": frame(0xC2, 4), "with stray bytes before its frame": stray,
		"with a stray byte after its start": early} {
		_, err := decodeImage("cmyk.jpg", b)
		if !errors.Is(err, ErrBadData) || !strings.Contains(err.Error(), "takes") {
			t.Errorf("%s 10000 x 10000: %v, want refused by its memory", what, err)
		}
	}
	_, err := decodeImage("baseline.jpg", frame(0xC0, 4))
	if err == nil || strings.Contains(err.Error(), "takes") {
		t.Errorf("baseline CMYK 10000 x 10000: %v, want within the bound (and a truncated file)", err)
	}
}

// Subsampled chroma counts at its size: 4:2:0 is 1.5 samples a pixel.
func TestJPEGFramePlanesFollowSampling(t *testing.T) {
	sof := func(factors ...byte) []byte {
		b := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, byte(8 + 3*len(factors)), 8, 0, 16, 0, 16, byte(len(factors))}
		for c, f := range factors {
			b = append(b, byte(c+1), f, 0)
		}
		return b
	}
	for _, c := range []struct {
		frame []byte
		want  float64
	}{{sof(0x22, 0x11, 0x11), 1.5}, {sof(0x11, 0x11, 0x11), 3}, {sof(0x11), 1}, {sof(0x11, 0x11, 0x11, 0x11), 4}, {sof(0x21, 0x11, 0x11), 2}} {
		if planes, _, ok := jpegFrame(c.frame); !ok || planes != c.want {
			t.Errorf("% x: %.2f planes (found %v), want %.2f", c.frame, planes, ok, c.want)
		}
	}
}
