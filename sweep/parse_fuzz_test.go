package sweep

import (
	"encoding/json"
	"testing"
)

// FuzzParseSpec: no sweep file panics the parser or the validation (nor
// grows without bound: YAML aliases are refused past the decoder's
// limit); a valid spec travels as JSON (how it reaches the workflows)
// without changing any training it names.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("name: t\nmodels: [smallcnn, resnet18]\nresolutions: [32, 64]\nseeds: [1, 2]\nhyper: {optimizer: adamw, beta1: 0}\n"))
	f.Add([]byte("name: t\nmodels: [vgg11]\nresolutions: [224]\ninit: {weights: torchvision, lr_scale: 0.1}\n"))
	f.Add([]byte("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"))
	f.Add([]byte("name: t\nmodels: [smallcnn]\nresolutions: [16]\nepochs: 1e300\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil || s.Validate() != nil {
			return
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("to JSON: %v", err)
		}
		var back Spec
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatalf("from JSON: %v", err)
		}
		combos := s.Combinations()
		if got := back.Combinations(); len(got) != len(combos) {
			t.Fatalf("%d combinations, %d after JSON", len(combos), len(got))
		}
		for i, c := range combos[:min(len(combos), 20)] {
			if a, b := s.Config(c).Hash(), back.Config(back.Combinations()[i]).Hash(); a != b {
				t.Fatalf("%v: config hash %s, %s after JSON (%s)", c, a, b, j)
			}
		}
	})
}
