package sweep

import (
	"fmt"
	"slices"
	"strings"
)

// ModelInfo describes one architecture the bridge can build.
type ModelInfo struct {
	Name   string
	Family string // first path element of the checkpoint layout
	// MinResolution: VGG's five 2x2 max-pools need at least 32 px.
	MinResolution int
	// Classifier is the state-dict prefix of the last layer, which
	// fine-tuning replaces for the data's classes (torchvision's names).
	Classifier string
}

// MaxResolution bounds the input size; beyond it a single image is larger
// than any accelerator can train on in a useful batch.
const MaxResolution = 2048

var models = []ModelInfo{
	{"smallcnn", "cnn", 8, "classifier.0."},
	{"vgg11", "vgg", 32, vggHead}, {"vgg11_bn", "vgg", 32, vggHead},
	{"vgg13", "vgg", 32, vggHead}, {"vgg13_bn", "vgg", 32, vggHead},
	{"vgg16", "vgg", 32, vggHead}, {"vgg16_bn", "vgg", 32, vggHead},
	{"vgg19", "vgg", 32, vggHead}, {"vgg19_bn", "vgg", 32, vggHead},
	{"resnet18", "resnet", 32, resnetHead}, {"resnet34", "resnet", 32, resnetHead}, {"resnet50", "resnet", 32, resnetHead},
	{"mobilenet_v3_large", "mobilenet", 32, mobilenetHead}, {"mobilenet_v3_small", "mobilenet", 32, mobilenetHead},
	{"efficientnet_b0", "efficientnet", 32, efficientnetHead}, {"efficientnet_b1", "efficientnet", 32, efficientnetHead},
	{"efficientnet_b2", "efficientnet", 32, efficientnetHead}, {"efficientnet_b3", "efficientnet", 32, efficientnetHead},
}

const (
	vggHead          = "classifier.6."
	resnetHead       = "fc."
	mobilenetHead    = "classifier.3."
	efficientnetHead = "classifier.1."
)

// Models lists every supported architecture.
func Models() []ModelInfo { return slices.Clone(models) }

// LookupModel returns the architecture called name.
func LookupModel(name string) (ModelInfo, error) {
	for _, m := range models {
		if m.Name == name {
			return m, nil
		}
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return ModelInfo{}, fmt.Errorf("%w: unknown model %q (known: %s)", ErrInvalid, name, strings.Join(names, ", "))
}

// FamilyOf is the family of a known model ("" for an unknown one, which
// validation refuses before anything runs).
func FamilyOf(model string) string {
	info, _ := LookupModel(model)
	return info.Family
}

// MicroBatchChangesResult says whether splitting a batch into
// micro-batches changes what model learns: with BatchNorm layers (every
// model but VGG without _bn) each micro-batch is normalised over itself,
// so its size is part of the training's identity.
func MicroBatchChangesResult(model string) bool {
	return strings.HasPrefix(model, "vgg") == strings.HasSuffix(model, "_bn")
}

// CheckResolution rejects resolutions a model cannot train at.
func (m ModelInfo) CheckResolution(res int) error {
	if res < m.MinResolution || res > MaxResolution {
		return fmt.Errorf("%w: resolution %d out of range for %s (%d..%d px)", ErrInvalid, res, m.Name, m.MinResolution, MaxResolution)
	}
	return nil
}
