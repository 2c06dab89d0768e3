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
		"init:\n  lr_scale: oops\n": `line 5: "oops" is not a number`,
		"epochs: [1]\n":             "is not a whole number",
	} {
		_, err := Parse([]byte(base + doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", doc, err, want)
		}
	}
}
