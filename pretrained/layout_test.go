package pretrained

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/sweep"
)

// weightsOf is a state dict with model's recorded layout (no data: shapes
// are what CheckFits reads), plus a classifier for classes.
func weightsOf(t *testing.T, model string) map[string]checkpoint.Tensor {
	t.Helper()
	layout, ok := Layout(model)
	if !ok {
		t.Fatalf("no layout recorded for %s", model)
	}
	w := map[string]checkpoint.Tensor{}
	for _, l := range layout {
		w[l.Name] = checkpoint.Tensor{Name: l.Name, DType: l.DType, Shape: slices.Clone(l.Shape)}
	}
	return w
}

func TestCheckFits(t *testing.T) {
	info, _ := sweep.LookupModel("resnet18")
	vit, _ := sweep.LookupModel("vit_b_16")
	for _, tc := range []struct {
		name, model string
		edit        func(w map[string]checkpoint.Tensor)
		want        string // "" fits
	}{
		{"its own layout", "resnet18", func(map[string]checkpoint.Tensor) {}, ""},
		{"ImageNet's classifier", "resnet18", func(w map[string]checkpoint.Tensor) {
			w["fc.weight"] = checkpoint.Tensor{DType: "F32", Shape: []int64{1000, 512}}
			w["fc.bias"] = checkpoint.Tensor{DType: "F32", Shape: []int64{1000}}
		}, ""},
		{"a first convolution for grey images", "resnet18", func(w map[string]checkpoint.Tensor) {
			w["conv1.weight"] = checkpoint.Tensor{DType: "F32", Shape: []int64{64, 1, 7, 7}}
		}, ""},
		{"a ViT's embedding for 384 px", "vit_b_16", func(w map[string]checkpoint.Tensor) {
			w[sweep.PositionEmbedding] = checkpoint.Tensor{DType: "F32", Shape: []int64{1, 577, 768}}
		}, ""},
		{"a key missing", "resnet18", func(w map[string]checkpoint.Tensor) { delete(w, "layer3.0.bn1.running_var") },
			"the weights have no layer3.0.bn1.running_var"},
		{"a key too many", "resnet18", func(w map[string]checkpoint.Tensor) {
			w["layer5.0.conv1.weight"] = checkpoint.Tensor{DType: "F32", Shape: []int64{1}}
		}, "the weights hold layer5.0.conv1.weight, which resnet18 has not (1 such keys"},
		{"a layer misshapen", "resnet18", func(w map[string]checkpoint.Tensor) {
			w["layer2.0.conv1.weight"] = checkpoint.Tensor{DType: "F32", Shape: []int64{128, 32, 3, 3}}
		}, "layer2.0.conv1.weight is F32[128 32 3 3] in the weights, F32[128 64 3 3] in resnet18"},
		{"half precision", "resnet18", func(w map[string]checkpoint.Tensor) {
			w["conv1.weight"] = checkpoint.Tensor{DType: "F16", Shape: []int64{64, 3, 7, 7}}
		}, "conv1.weight is F16"},
		{"the embedding's type", "vit_b_16", func(w map[string]checkpoint.Tensor) {
			w[sweep.PositionEmbedding] = checkpoint.Tensor{DType: "F16", Shape: []int64{1, 197, 768}}
		}, "encoder.pos_embedding is F16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := weightsOf(t, tc.model)
			tc.edit(w)
			classifier := info.Classifier
			if tc.model == "vit_b_16" {
				classifier = vit.Classifier
			}
			err := CheckFits(tc.model, classifier, w)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrDoNotFit) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	// Another architecture's weights: the first key it lacks is named.
	if err := CheckFits("resnet18", info.Classifier, weightsOf(t, "vgg11")); err == nil || !strings.Contains(err.Error(), "the weights have no conv1.weight (are they resnet18's weights?)") {
		t.Errorf("vgg11's weights for resnet18: %v", err)
	}
	// A TorchScript model's layout is its file's: nothing to check here.
	if err := CheckFits("script:net", "", weightsOf(t, "vgg11")); err != nil {
		t.Errorf("a TorchScript model: %v", err)
	}
}

// Every model of the registry but TorchScript ones has a layout, and
// each fits its own.
func TestEveryModelHasALayout(t *testing.T) {
	for _, info := range sweep.Models() {
		if err := CheckFits(info.Name, info.Classifier, weightsOf(t, info.Name)); err != nil {
			t.Errorf("%s: %v", info.Name, err)
		}
	}
}
