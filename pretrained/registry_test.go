package pretrained_test

import (
	"slices"
	"testing"

	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
)

// The model registry (sweep/models.go) and torchvision's weights agree:
// every model torchvision has weights for is one ResoMap builds, and every
// model ResoMap builds but its own small CNN has torchvision's weights
// (the bridge builds every registered model: TestEveryModelTrains).
func TestTorchvisionWeightsCoverTheRegistry(t *testing.T) {
	var registered []string
	for _, m := range sweep.Models() {
		registered = append(registered, m.Name)
	}
	weights := pretrained.TorchvisionModels()
	for _, name := range weights {
		if !slices.Contains(registered, name) {
			t.Errorf("torchvision:%s has weights but no model in sweep/models.go", name)
		}
	}
	for _, name := range registered {
		if name != "smallcnn" && !slices.Contains(weights, name) {
			t.Errorf("%s is registered but torchvision:%s names no weights (pretrained/source.go)", name, name)
		}
	}
}
