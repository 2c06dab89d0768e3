package pretrained_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
)

// The model registry (sweep/models.go) names torchvision's weights of
// every model ResoMap builds but its own small CNN, each by torch.hub's
// file name (the model's name, a variant, and the start of its SHA-256,
// which Fetch checks), and torchvision:NAME knows exactly those (the
// bridge builds every registered model: TestEveryModelTrains).
func TestTorchvisionWeightsCoverTheRegistry(t *testing.T) {
	var named []string
	for _, m := range sweep.Models() {
		hub := regexp.MustCompile(`^` + regexp.QuoteMeta(m.Name) + `(_[a-z]+)?-[0-9a-f]{8}\.pth$`)
		switch {
		case m.Name == "smallcnn" && m.Torchvision != "":
			t.Errorf("smallcnn names torchvision weights %q: torchvision has none", m.Torchvision)
		case m.Name != "smallcnn" && !hub.MatchString(m.Torchvision):
			t.Errorf("%s names torchvision weights %q, not torch.hub's name-<sha256 prefix>.pth", m.Name, m.Torchvision)
		}
		if m.Torchvision != "" {
			named = append(named, m.Name)
		}
	}
	slices.Sort(named)
	if got := pretrained.TorchvisionModels(); !slices.Equal(got, named) {
		t.Errorf("torchvision:NAME knows %v, the registry names weights for %v", got, named)
	}
}
