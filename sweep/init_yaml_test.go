package sweep

import (
	"errors"
	"strings"
	"testing"
)

// `init: PATH` is short for `init: {weights: PATH}` (its defaults
// applied); the long form still refuses an unknown setting, with its line.
func TestInitShortFormAndStrictLongForm(t *testing.T) {
	base := "name: t\nmodels: [resnet18]\nresolutions: [64]\n"
	short, err := Parse([]byte(base + "init: /path/to/weights.pth\n"))
	if err != nil {
		t.Fatal(err)
	}
	long, err := Parse([]byte(base + "init: {weights: /path/to/weights.pth}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if short.Init != long.Init || short.Init.Weights != "/path/to/weights.pth" || short.Init.LRScale != 1 || short.Init.BatchNorm != BatchNormKeep {
		t.Fatalf("init: PATH gave %+v, init: {weights: PATH} %+v", short.Init, long.Init)
	}
	if err := short.Validate(); err != nil {
		t.Fatal(err)
	}
	for doc, want := range map[string]string{
		"init: {weigths: w.pth}\n":  `line 4: init: unknown setting "weigths"`,
		"init: [w.pth]\n":           "line 4: init: want a weights file",
		"init: \"\"\n":              "line 4: init: empty",
		"init:\n  lr_scale: oops\n": `line 5: "oops" is not a number`,
		"epochs: [1]\n":             "is not a whole number",
	} {
		_, err := Parse([]byte(base + doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", doc, err, want)
		}
	}
}

// A per-combination weights source names each training's own file (the
// Python tool's tree), and the file's content, not its name, names the
// training: two combinations differ in source, not in how they hash it.
func TestInitWeightsPerCombination(t *testing.T) {
	s, err := Parse([]byte("name: t\nmodels: [resnet18, vgg11]\nresolutions: [64, 96]\ninit: ckpt/{family}/{model}/{res}/best_model.pt\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range s.Combinations() {
		got[s.Config(c).Init.Weights] = true
	}
	for _, want := range []string{"ckpt/resnet/resnet18/64/best_model.pt", "ckpt/resnet/resnet18/96/best_model.pt", "ckpt/vgg/vgg11/64/best_model.pt", "ckpt/vgg/vgg11/96/best_model.pt"} {
		if !got[want] {
			t.Errorf("no combination starts from %s (got %v)", want, got)
		}
	}
}
