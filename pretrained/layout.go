package pretrained

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/sweep"
)

// Tensor is one entry of a model's state dict as the bridge builds it.
type Tensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"` // safetensors' names: F32, I64, …
	Shape []int64 `json:"shape"`
}

// layoutsFile holds, for every built-in model of the registry, its state
// dict as the bridge builds it for colour images, the classifier left
// out (its shape follows the data's classes) and the ViT at 224 px. The
// trainer's TestRecordedLayoutsAreTheBridges holds it equal to the bridge
// (RESOMAP_UPDATE_LAYOUTS=1 rewrites it), so a machine without libtorch,
// the starter's, can tell whether weights fit a model.
//
//go:embed layouts.json.gz
var layoutsFile []byte

// LayoutsFile is where layoutsFile is kept, from the module's root.
const LayoutsFile = "pretrained/layouts.json.gz"

var layouts = sync.OnceValues(func() (map[string][]Tensor, error) {
	zr, err := gzip.NewReader(bytes.NewReader(layoutsFile))
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var m map[string][]Tensor
	return m, json.Unmarshal(b, &m)
})

// Layout is model's recorded state dict (false for a TorchScript model or
// one not recorded).
func Layout(model string) ([]Tensor, bool) {
	m, err := layouts()
	if err != nil {
		panic(fmt.Sprintf("pretrained: the embedded %s is damaged: %v", LayoutsFile, err)) // a build error, not an input's
	}
	l, ok := m[model]
	return l, ok
}

// LayoutModels are the models whose layout is recorded.
func LayoutModels() []string {
	m, _ := layouts()
	var names []string
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Extra is what weights hold that a model has not (not in used, not its
// classifier's): the first key by name and how many; n 0 for none.
func Extra(weights map[string]checkpoint.Tensor, used map[string]bool, head func(string) bool) (first string, n int) {
	var extra []string
	for name := range weights {
		if !used[name] && !head(name) {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return "", 0
	}
	slices.Sort(extra)
	return extra[0], len(extra)
}

// ExtraMessage says what Extra found, of model.
func ExtraMessage(first string, n int, model string) string {
	return fmt.Sprintf("the weights hold %s, which %s has not (%d such keys: another architecture?)", first, model, n)
}

// IsStem says whether t, of a recorded (colour) layout, is the model's
// first convolution: the one kernel that takes the image's 3 channels.
func IsStem(t Tensor) bool { return len(t.Shape) == 4 && t.Shape[1] == 3 }

// ErrDoNotFit marks weights that do not fit the model they are to start.
var ErrDoNotFit = errkind.New(errkind.Invalid, "the weights do not fit the model")

// CheckFits tells, without libtorch, whether weights can start model, as
// the workers' Prepare will find when it loads them into the model: every
// key of the model's recorded layout is in the weights with its type and
// shape, and the weights hold nothing else; the classifier (its state-dict
// prefix) is left out, as the training replaces it. What only the data or
// the resolution decides passes here and is Prepare's: a first convolution
// for another number of input channels (colour weights on grey data), a
// ViT's position embedding for another size. The first misfit is named.
// A model with no recorded layout (a TorchScript one) passes.
func CheckFits(model, classifier string, weights map[string]checkpoint.Tensor) error {
	layout, ok := Layout(model)
	if !ok {
		return nil
	}
	head := func(name string) bool { return classifier != "" && strings.HasPrefix(name, classifier) }
	known := map[string]bool{}
	for _, want := range layout {
		known[want.Name] = true
		got, ok := weights[want.Name]
		switch {
		case !ok:
			return fmt.Errorf("%w: the weights have no %s (are they %s's weights?)", ErrDoNotFit, want.Name, model)
		case got.DType != want.DType || len(got.Shape) != len(want.Shape):
		case want.Name == sweep.PositionEmbedding && got.Shape[0] == 1 && got.Shape[2] == want.Shape[2]:
			continue // resized to the training's size, its tokens the resolution's
		case IsStem(want) && (got.Shape[1] == 1 || got.Shape[1] == 3) && got.Shape[0] == want.Shape[0] && slices.Equal(got.Shape[2:], want.Shape[2:]):
			continue // colour or grey: the data decides which fits
		case slices.Equal(got.Shape, want.Shape):
			continue
		}
		return fmt.Errorf("%w: %s is %s%v in the weights, %s%v in %s", ErrDoNotFit, want.Name, got.DType, got.Shape, want.DType, want.Shape, model)
	}
	if first, n := Extra(weights, known, head); n > 0 {
		return fmt.Errorf("%w: %s", ErrDoNotFit, ExtraMessage(first, n, model))
	}
	return nil
}
