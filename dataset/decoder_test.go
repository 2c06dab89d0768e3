package dataset

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/resomap/resomap/dataset/turbojpeg"
)

// TurboJPEG and Go's decoder give other pixels for the same photos, so a
// data cache made by one is never served to a training that names the
// other: the decoder is in the cache's key, a training names the one its
// spec chose, and CheckDecoder refuses a worker with another.
func TestTheDecoderNamesPhotosPixels(t *testing.T) {
	dec, err := turbojpeg.Open()
	if err != nil {
		t.Fatalf("libturbojpeg0 is part of the test set-up (make deps): %v", err)
	}
	dir, cache := t.TempDir(), t.TempDir()
	writePhotos(t, dir, 24, 96, 80)
	fast := Options{CacheDir: cache, Augment: AugmentImageNet, JPEG: dec}
	slow := Options{CacheDir: cache, Augment: AugmentImageNet}

	for _, c := range []struct {
		augment string
		want    bool
	}{
		{AugmentImageNet, true},
		{"", true},            // an image folder's default recipe is ImageNet's
		{AugmentCIFAR, false}, // Go's decoder on every worker
	} {
		if got, err := DecodesPhotos(dir, c.augment, Options{}); err != nil || got != c.want {
			t.Errorf("DecodesPhotos(folder, %q) = %v, %v; want %v", c.augment, got, err, c.want)
		}
	}
	if got, err := DecodesPhotos(FashionMNIST, AugmentImageNet, Options{}); err != nil || got {
		t.Errorf("DecodesPhotos(fashion-mnist) = %v, %v; want false (IDX data decodes no JPEG)", got, err)
	}
	pngs := t.TempDir() // PNG photos: no JPEG decoder makes their pixels
	for _, f := range []string{"cats/a.png", "dogs/b.png"} {
		os.MkdirAll(filepath.Join(pngs, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(pngs, f), []byte("png"), 0o644)
	}
	if got, err := DecodesPhotos(pngs, AugmentImageNet, Options{}); err != nil || got {
		t.Errorf("DecodesPhotos(PNG folder) = %v, %v; want false", got, err)
	}
	if DecoderName(dec) != DecoderTurbo || DecoderName(nil) != DecoderGo {
		t.Errorf("decoder names %q %q", DecoderName(dec), DecoderName(nil))
	}

	a, err := Open(dir, 32, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(dir, 32, slow)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.CachePath == b.CachePath {
		t.Fatalf("both decoders share the cache %s", a.CachePath)
	}
	if bytes.Equal(a.Val.images, b.Val.images) {
		t.Errorf("the two decoders made the same validation pixels: the test photos do not show the difference it guards")
	}

	// A training names its decoder ("": libjpeg-turbo); a worker with
	// another refuses it (retryable elsewhere, not bad data).
	for _, c := range []struct {
		want string
		opts Options
		ok   bool
	}{
		{"", fast, true}, {DecoderTurbo, fast, true}, {DecoderGo, fast, false},
		{"", slow, false}, {DecoderGo, slow, true},
	} {
		err := CheckDecoder(dir, AugmentImageNet, c.want, c.opts)
		if (err == nil) != c.ok || err != nil && (!errors.Is(err, ErrOtherDecoder) || errors.Is(err, ErrBadData)) {
			t.Errorf("CheckDecoder(want %q, worker %s): %v", c.want, DecoderName(c.opts.JPEG), err)
		}
	}
	if err := CheckDecoder(dir, AugmentCIFAR, DecoderTurbo, slow); err != nil {
		t.Errorf("the CIFAR recipe needs no decoder: %v", err)
	}
	if CheckDecoderName("pil") == nil {
		t.Error("an unknown decoder name was accepted")
	}
}
