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
	// Patch, where set, is a ViT's patch size: resolutions are multiples
	// of it (torchvision's ViT drops the pixels past the last whole patch).
	Patch int
}

// MaxResolution bounds the input size; beyond it a single image is larger
// than any accelerator can train on in a useful batch.
const MaxResolution = 2048

var models = []ModelInfo{
	conv("smallcnn", "cnn", 8, "classifier.0."),
	conv("vgg11", "vgg", 32, vggHead), conv("vgg11_bn", "vgg", 32, vggHead),
	conv("vgg13", "vgg", 32, vggHead), conv("vgg13_bn", "vgg", 32, vggHead),
	conv("vgg16", "vgg", 32, vggHead), conv("vgg16_bn", "vgg", 32, vggHead),
	conv("vgg19", "vgg", 32, vggHead), conv("vgg19_bn", "vgg", 32, vggHead),
	conv("resnet18", "resnet", 32, resnetHead), conv("resnet34", "resnet", 32, resnetHead), conv("resnet50", "resnet", 32, resnetHead),
	conv("mobilenet_v3_large", "mobilenet", 32, mobilenetHead), conv("mobilenet_v3_small", "mobilenet", 32, mobilenetHead),
	conv("efficientnet_b0", "efficientnet", 32, efficientnetHead), conv("efficientnet_b1", "efficientnet", 32, efficientnetHead),
	conv("efficientnet_b2", "efficientnet", 32, efficientnetHead), conv("efficientnet_b3", "efficientnet", 32, efficientnetHead),
	conv("convnext_tiny", "convnext", 32, convnextHead), conv("convnext_small", "convnext", 32, convnextHead),
	conv("convnext_base", "convnext", 32, convnextHead),
	conv("regnet_y_400mf", "regnet", 32, resnetHead), conv("regnet_y_800mf", "regnet", 32, resnetHead),
	conv("regnet_y_1_6gf", "regnet", 32, resnetHead), conv("regnet_x_400mf", "regnet", 32, resnetHead),
	conv("regnet_x_800mf", "regnet", 32, resnetHead),
	{Name: "vit_b_16", Family: "vit", MinResolution: 32, Classifier: "heads.head.", Patch: 16},
}

// conv describes a convolutional network: any resolution from min up.
func conv(name, family string, min int, head string) ModelInfo {
	return ModelInfo{Name: name, Family: family, MinResolution: min, Classifier: head}
}

// PositionEmbedding is the state-dict key of a ViT's position embedding,
// which weights made for another image size bring in resized.
const PositionEmbedding = "encoder.pos_embedding"

const (
	vggHead          = "classifier.6."
	resnetHead       = "fc."
	mobilenetHead    = "classifier.3."
	efficientnetHead = "classifier.1."
	convnextHead     = "classifier.2."
)

// Models lists every supported architecture.
func Models() []ModelInfo { return slices.Clone(models) }

// LookupModel returns the architecture called name.
func LookupModel(name string) (ModelInfo, error) {
	if info, ok, err := scriptModel(name); ok {
		return info, err
	}
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
// CNN but VGG without _bn) each micro-batch is normalised over itself,
// so its size is part of the training's identity. ConvNeXt has no
// BatchNorm but draws its stochastic-depth masks per micro-batch, which
// changes them too. ViT (LayerNorm, no dropout or stochastic depth)
// learns the same from any split, as VGG does.
func MicroBatchChangesResult(model string) bool {
	switch FamilyOf(model) {
	case "vit":
		return false
	case ScriptFamily: // whatever it holds: the safe side
		return true
	}
	return strings.HasPrefix(model, "vgg") == strings.HasSuffix(model, "_bn")
}

// CheckResolution rejects resolutions a model cannot train at.
func (m ModelInfo) CheckResolution(res int) error {
	if res < m.MinResolution || res > MaxResolution {
		return fmt.Errorf("%w: resolution %d out of range for %s (%d..%d px)", ErrInvalid, res, m.Name, m.MinResolution, MaxResolution)
	}
	if m.Patch > 0 && res%m.Patch != 0 {
		return fmt.Errorf("%w: resolution %d for %s: not a multiple of its %d px patches (try %d or %d)", ErrInvalid, res, m.Name,
			m.Patch, res/m.Patch*m.Patch, (res/m.Patch+1)*m.Patch)
	}
	return nil
}
