package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The augmentation recipes a data set can be trained with. The recipe
// decides what the cache stores, so it is part of the cache's key, and of
// the training config (it changes results).
const (
	// AugmentCIFAR: images centre-cropped to a square and resized once to
	// the resolution; training pads, crops at random and flips.
	AugmentCIFAR = "cifar"
	// AugmentImageNet: training takes RandomResizedCrop(res, scale
	// 0.08-1, ratio 3/4-4/3) + flip of each image, validation
	// Resize(round(res/0.875)) + CenterCrop(res), as torchvision's
	// reference recipe for VGG and ResNet.
	AugmentImageNet = "imagenet"
)

// CheckAugment refuses an unknown recipe ("" means the data kind's default).
func CheckAugment(a string) error {
	switch a {
	case "", AugmentCIFAR, AugmentImageNet:
		return nil
	}
	return fmt.Errorf("%w: augment %q, want %s or %s", ErrBadData, a, AugmentCIFAR, AugmentImageNet)
}

// DefaultAugment is the recipe of a data source that names none: photos in
// an image folder get the ImageNet recipe, IDX files (small, uniform images
// such as Fashion-MNIST) the CIFAR one.
func DefaultAugment(spec string) (string, error) {
	dir, err := Resolve(spec)
	if err != nil {
		return "", err
	}
	if _, err := findIDX(dir); err == nil {
		return AugmentCIFAR, nil
	}
	return AugmentImageNet, nil
}

// StoredSide is the shorter side at which the ImageNet recipe stores a
// training image for resolution res: validation resizes to it before its
// centre crop (res/0.875, 256 for 224), and random crops are taken from it.
func StoredSide(res int) int { return int(math.RoundToEven(float64(res) / 0.875)) }

// RandomResizedCrop's parameters, torchvision's defaults.
const (
	cropScaleMin = 0.08
	cropScaleMax = 1.0
	cropRatioMin = 3.0 / 4
	cropRatioMax = 4.0 / 3
)

// randomResizedCrop draws a crop box of a w x h image the way torchvision's
// RandomResizedCrop.get_params does (ten tries, then a centre crop of the
// clamped aspect), from rng, so a step's boxes depend only on its seed.
func randomResizedCrop(rng *rand.Rand, w, h int) box {
	area := float64(w * h)
	logLo, logHi := math.Log(cropRatioMin), math.Log(cropRatioMax)
	for try := 0; try < 10; try++ {
		target := area * (cropScaleMin + rng.Float64()*(cropScaleMax-cropScaleMin))
		ratio := math.Exp(logLo + rng.Float64()*(logHi-logLo))
		bw := int(math.RoundToEven(math.Sqrt(target * ratio)))
		bh := int(math.RoundToEven(math.Sqrt(target / ratio)))
		if bw > 0 && bw <= w && bh > 0 && bh <= h {
			y := rng.IntN(h - bh + 1)
			x := rng.IntN(w - bw + 1)
			return box{x: x, y: y, w: bw, h: bh}
		}
	}
	bw, bh := w, h
	switch in := float64(w) / float64(h); {
	case in < cropRatioMin:
		bh = int(math.RoundToEven(float64(bw) / cropRatioMin))
	case in > cropRatioMax:
		bw = int(math.RoundToEven(float64(bh) * cropRatioMax))
	}
	return box{x: (w - bw) / 2, y: (h - bh) / 2, w: bw, h: bh}
}

// ValTransform is the set's validation input pipeline in torchvision's
// terms, before ToTensor and Normalize(mean, std).
func (s *Set) ValTransform() string {
	if s.Augment == AugmentImageNet {
		return fmt.Sprintf("Resize(%d)+CenterCrop(%d)", StoredSide(s.Resolution), s.Resolution)
	}
	// CIFAR recipe: centre square crop, resized with Catmull-Rom (x/image).
	return fmt.Sprintf("CenterCrop(min(h,w))+Resize((%d,%d), bicubic)", s.Resolution, s.Resolution)
}
