package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeIDX writes a tiny MNIST-style data set (gzipped or not).
func writeIDX(t *testing.T, dir string, gz bool, n, size int, fill byte) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	write := func(name string, hdr []uint32, dims byte, data []byte) {
		var buf bytes.Buffer
		buf.Write([]byte{0, 0, 8, dims})
		for _, d := range hdr {
			binary.Write(&buf, binary.BigEndian, d)
		}
		buf.Write(data)
		b := buf.Bytes()
		if gz {
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write(b)
			w.Close()
			b, name = z.Bytes(), name+".gz"
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pix := make([]byte, n*size*size)
	for i := range pix {
		pix[i] = fill + byte(i%7)
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 3)
	}
	for _, split := range []string{"train", "t10k"} {
		write(split+"-images-idx3-ubyte", []uint32{uint32(n), uint32(size), uint32(size)}, 3, pix)
		write(split+"-labels-idx1-ubyte", []uint32{uint32(n)}, 1, labels)
	}
}

func TestIDXGzippedOrNotAndResized(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		writeIDX(t, dir, gz, 12, 8, 10)
		s, err := Open(dir, 16, Options{CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if s.Train.N != 12 || s.Val.N != 12 || s.Train.C != 1 || s.Train.H != 16 || len(s.Classes) != 3 {
			t.Fatalf("gz=%v: %d/%d images, %d channels, %d px, %d classes", gz, s.Train.N, s.Val.N, s.Train.C, s.Train.H, len(s.Classes))
		}
		if s.Train.Label(4) != 1 || len(s.Train.Image(0)) != 256 {
			t.Fatalf("label %d, image %d bytes", s.Train.Label(4), len(s.Train.Image(0)))
		}
		s.Close()
	}
}

// The cache is keyed by the source's content: a changed source is rebuilt.
func TestCacheFollowsTheSource(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writeIDX(t, dir, false, 6, 8, 10)
	a, err := Open(dir, 8, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	first := a.Train.Image(0)[0]
	a.Close()
	writeIDX(t, dir, false, 6, 8, 100)
	b, err := Open(dir, 8, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Train.Image(0)[0] == first || b.CachePath == a.CachePath {
		t.Fatal("changed source served from the old cache")
	}
}

func writeImage(t *testing.T, p string, w, h int, c color.Color) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	os.WriteFile(p, buf.Bytes(), 0o644)
}

func TestImageFolderSplitsAndCrops(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 10; i++ {
		writeImage(t, filepath.Join(dir, "cats", "c"+string(rune('a'+i))+".png"), 40, 20, color.RGBA{200, 10, 10, 255})
		writeImage(t, filepath.Join(dir, "dogs", "d"+string(rune('a'+i))+".png"), 20, 30, color.RGBA{10, 10, 200, 255})
	}
	s, err := Open(dir, 12, Options{CacheDir: t.TempDir(), SplitSeed: 3, Augment: AugmentCIFAR})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(s.Classes, []string{"cats", "dogs"}) || s.Train.N != 18 || s.Val.N != 2 || s.Train.C != 3 {
		t.Fatalf("classes %v, %d train, %d val, %d channels", s.Classes, s.Train.N, s.Val.N, s.Train.C)
	}
	for i := 0; i < s.Train.N; i++ {
		img := s.Train.Image(i)
		red, blue := img[0], img[2*144]
		if s.Train.Label(i) == 0 && (red < 190 || blue > 20) || s.Train.Label(i) == 1 && (blue < 190 || red > 20) {
			t.Fatalf("image %d (class %d) has red %d blue %d", i, s.Train.Label(i), red, blue)
		}
	}
	// train/ and val/ folders are used as given.
	tv := t.TempDir()
	for _, split := range []string{"train", "val"} {
		for _, cls := range []string{"a", "b"} {
			writeImage(t, filepath.Join(tv, split, cls, "x.png"), 8, 8, color.White)
		}
	}
	s2, err := Open(tv, 8, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Train.N != 2 || s2.Val.N != 2 {
		t.Fatalf("train/val folders: %d/%d", s2.Train.N, s2.Val.N)
	}
	// A broken image is an error naming the file.
	os.WriteFile(filepath.Join(dir, "dogs", "broken.png"), []byte("not a png"), 0o644)
	if _, err := Open(dir, 12, Options{CacheDir: t.TempDir()}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("broken.png")) {
		t.Fatalf("broken image: %v", err)
	}
}

// A class folder that is a symbolic link (a data set assembled from
// links) is a class like any other, named by the link.
func TestSymlinkedClassFoldersAreClasses(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	for i := 0; i < 6; i++ {
		writeImage(t, filepath.Join(dir, "cats", "c"+string(rune('a'+i))+".png"), 16, 16, color.RGBA{200, 10, 10, 255})
		writeImage(t, filepath.Join(elsewhere, "d"+string(rune('a'+i))+".png"), 16, 16, color.RGBA{10, 10, 200, 255})
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "dogs")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, 8, Options{CacheDir: t.TempDir(), SplitSeed: 3, Augment: AugmentCIFAR})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(s.Classes, []string{"cats", "dogs"}) || s.Train.N+s.Val.N != 12 {
		t.Fatalf("classes %v with %d images, want cats and the linked dogs with 12", s.Classes, s.Train.N+s.Val.N)
	}
}

// Epoch order and augmentation depend only on their seeds; the prefetching
// goroutine delivers the same batches from any starting step.
func TestBatchesAreSeededAndResumable(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, dir, false, 64, 8, 0)
	s, err := Open(dir, 8, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	order := EpochOrder(s.Train.N, 42)
	if !slices.Equal(order, EpochOrder(s.Train.N, 42)) || slices.Equal(order, EpochOrder(s.Train.N, 43)) {
		t.Fatal("epoch order is not a function of its seed")
	}
	aug := Augment{CropPadding: 2, Flip: true}
	seedOf := func(step int) uint64 { return uint64(1000 + step) }
	collect := func(start int) []Batch {
		var out []Batch
		for b := range Batches(context.Background(), s.Train, order, 8, start, aug, seedOf) {
			out = append(out, b)
		}
		return out
	}
	all, tail := collect(0), collect(5)
	if len(all) != 8 || len(tail) != 3 || tail[0].Step != 5 {
		t.Fatalf("%d batches from 0, %d from 5", len(all), len(tail))
	}
	for i, b := range tail {
		if !bytes.Equal(b.Images, all[5+i].Images) || !slices.Equal(b.Labels, all[5+i].Labels) {
			t.Fatalf("batch %d differs when started at step 5", 5+i)
		}
	}
	changed := 0
	for i := 0; i < 8; i++ {
		if !bytes.Equal(all[0].Images[i*64:(i+1)*64], s.Train.Image(order[i])) {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("augmentation changed no image")
	}
	// A cancelled context stops the producer.
	ctx, cancel := context.WithCancel(context.Background())
	ch := Batches(ctx, s.Train, order, 1, 0, aug, seedOf)
	<-ch
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("producer did not stop")
		}
	}
}
