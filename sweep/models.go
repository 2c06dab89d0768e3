package sweep

import (
	"fmt"
	"github.com/resomap/resomap/dataset"
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
	// Torchvision is the file of torchvision's ImageNet weights of it,
	// under its download base ("": none; torchvision:NAME fetches it).
	Torchvision string
}

// MaxResolution bounds the input size (dataset.MaxResolution, the one
// bound).
const MaxResolution = dataset.MaxResolution

var models = []ModelInfo{
	conv("smallcnn", "cnn", 8, "classifier.0.", ""),
	conv("vgg11", "vgg", 32, vggHead, "vgg11-8a719046.pth"), conv("vgg11_bn", "vgg", 32, vggHead, "vgg11_bn-6002323d.pth"),
	conv("vgg13", "vgg", 32, vggHead, "vgg13-19584684.pth"), conv("vgg13_bn", "vgg", 32, vggHead, "vgg13_bn-abd245e5.pth"),
	conv("vgg16", "vgg", 32, vggHead, "vgg16-397923af.pth"), conv("vgg16_bn", "vgg", 32, vggHead, "vgg16_bn-6c64b313.pth"),
	conv("vgg19", "vgg", 32, vggHead, "vgg19-dcbb9e9d.pth"), conv("vgg19_bn", "vgg", 32, vggHead, "vgg19_bn-c79401a0.pth"),
	conv("resnet18", "resnet", 32, resnetHead, "resnet18-f37072fd.pth"), conv("resnet34", "resnet", 32, resnetHead, "resnet34-b627a593.pth"),
	conv("resnet50", "resnet", 32, resnetHead, "resnet50-0676ba61.pth"),
	conv("mobilenet_v3_large", "mobilenet", 32, mobilenetHead, "mobilenet_v3_large-8738ca79.pth"),
	conv("mobilenet_v3_small", "mobilenet", 32, mobilenetHead, "mobilenet_v3_small-047dcff4.pth"),
	conv("efficientnet_b0", "efficientnet", 32, efficientnetHead, "efficientnet_b0_rwightman-3dd342df.pth"),
	conv("efficientnet_b1", "efficientnet", 32, efficientnetHead, "efficientnet_b1_rwightman-533bc792.pth"),
	conv("efficientnet_b2", "efficientnet", 32, efficientnetHead, "efficientnet_b2_rwightman-bcdf34b7.pth"),
	conv("efficientnet_b3", "efficientnet", 32, efficientnetHead, "efficientnet_b3_rwightman-cf984f9c.pth"),
	conv("convnext_tiny", "convnext", 32, convnextHead, "convnext_tiny-983f1562.pth"),
	conv("convnext_small", "convnext", 32, convnextHead, "convnext_small-0c510722.pth"),
	conv("convnext_base", "convnext", 32, convnextHead, "convnext_base-6075fbad.pth"),
	conv("regnet_y_400mf", "regnet", 32, resnetHead, "regnet_y_400mf-c65dace8.pth"),
	conv("regnet_y_800mf", "regnet", 32, resnetHead, "regnet_y_800mf-1b27b58c.pth"),
	conv("regnet_y_1_6gf", "regnet", 32, resnetHead, "regnet_y_1_6gf-b11a554e.pth"),
	conv("regnet_x_400mf", "regnet", 32, resnetHead, "regnet_x_400mf-adf1edd5.pth"),
	conv("regnet_x_800mf", "regnet", 32, resnetHead, "regnet_x_800mf-ad17e45c.pth"),
	{Name: "vit_b_16", Family: "vit", MinResolution: 32, Classifier: "heads.head.", Patch: 16, Torchvision: "vit_b_16-c867db91.pth"},
}

// conv describes a convolutional network: any resolution from min up.
func conv(name, family string, min int, head, torchvision string) ModelInfo {
	return ModelInfo{Name: name, Family: family, MinResolution: min, Classifier: head, Torchvision: torchvision}
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
