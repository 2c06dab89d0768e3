package dataset

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// The JPEG decoders a photo's pixels can come from. Two decoders give
// other pixels for the same file (IDCT rounding, TurboJPEG's shrinking in
// the DCT domain), so the one a training's photos are made with is part of
// its identity (sweep.Config.Decoder, chosen by the spec, never by the
// worker that happens to prepare it) and of the data cache's key.
const (
	DecoderTurbo = "libjpeg-turbo" // the default: PIL's decoder, and the fast one
	DecoderGo    = "go"            // Go's image/jpeg
)

// ErrOtherDecoder marks a training whose photos must be made with a JPEG
// decoder this process does not have: its pixels, and so its weights,
// would differ. Not bad data: a worker with that decoder can train it.
var ErrOtherDecoder = errors.New("needs another JPEG decoder")

// NamedDecoder is a JPEGDecoder that says what it is (its name goes into
// identities: change it when its pixels change).
type NamedDecoder interface {
	JPEGDecoder
	Name() string
}

// DecoderName names a JPEG decoder: DecoderGo for nil (Go's), the
// decoder's own name, or "custom" for one that has none.
func DecoderName(d JPEGDecoder) string {
	switch d := d.(type) {
	case nil:
		return DecoderGo
	case NamedDecoder:
		return d.Name()
	}
	return "custom"
}

// CheckDecoderName refuses a decoder ResoMap does not know ("" is the
// default, DecoderTurbo).
func CheckDecoderName(name string) error {
	switch name {
	case "", DecoderTurbo, DecoderGo:
		return nil
	}
	return fmt.Errorf("%w: decoder %q, want %s or %s", ErrBadData, name, DecoderTurbo, DecoderGo)
}

// DecodesPhotos says whether a JPEG decoder makes a data set's pixels under
// a recipe ("" = the data's default): the ImageNet recipe on an image
// folder that holds JPEG files; not IDX data, nor PNG photos, nor the CIFAR
// recipe, whose images Go's decoder makes on every worker.
func DecodesPhotos(spec, augment string, opts Options) (bool, error) {
	dir, err := resolve(spec, opts.Roots)
	if err != nil {
		return false, err
	}
	if augment == "" {
		if augment, err = DefaultAugment(dir); err != nil {
			return false, err
		}
	}
	return decodesPhotos(dir, augment, opts.Hashes), nil
}

func decodesPhotos(dir, augment string, memo *HashMemo) bool {
	if augment != AugmentImageNet {
		return false
	}
	if _, err := findIDX(dir); err == nil {
		return false
	}
	return hasJPEGFiles(dir, memo)
}

// hasJPEGFiles says whether dir holds a .jpg or .jpeg file (an unreadable
// folder counts as holding some: the decoder is then named, and the
// folder's own error comes where it is read). The answer is memoised per
// process with the content hashes (a data folder's kind does not change
// under a worker: its content is checked by hash).
func hasJPEGFiles(dir string, memo *HashMemo) bool {
	key := "has-jpeg\x00" + dir
	if v, ok := memo.get(key); ok {
		return v == "yes"
	}
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := strings.ToLower(filepath.Ext(path)); !d.IsDir() && (ext == ".jpg" || ext == ".jpeg") {
			return found
		}
		return nil
	})
	has := err != nil
	memo.put(key, map[bool]string{true: "yes", false: "no"}[has])
	return has
}

// decoderOf names the decoder whose pixels a cache of dir under a recipe
// holds ("" where none of the worker's choosing makes them).
func decoderOf(dir, augment string, opts Options) string {
	if !decodesPhotos(dir, augment, opts.Hashes) {
		return ""
	}
	return DecoderName(opts.JPEG)
}

// CheckDecoder refuses to make a training's photos with another decoder
// than the one it names (want "": DecoderTurbo), where a decoder makes
// them at all.
func CheckDecoder(spec, augment, want string, opts Options) error {
	uses, err := DecodesPhotos(spec, augment, opts)
	if err != nil || !uses {
		return err
	}
	want = cmp.Or(want, DecoderTurbo)
	if have := DecoderName(opts.JPEG); have != want {
		return fmt.Errorf("%w: %s's photos are made with %s for this training, this worker decodes JPEG with %s (install libturbojpeg0 on every worker, or set decoder: %s in the sweep file to train with it)",
			ErrOtherDecoder, spec, want, have, have)
	}
	return nil
}
