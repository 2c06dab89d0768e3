package trainer_test

import (
	"image"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
)

// Every model of the families since ResNet, initialised from a
// torchvision .pth written by Debian's python3-torchvision (its 1000-class
// head replaced for the data's two), trains an epoch at 64 px on a photo
// folder; vit_b_16 does from weights made for 224 px, its position
// embedding resized.
func TestTorchvisionWeightsStartEveryModel(t *testing.T) {
	py := pythonTorch(t)
	// Every model of the families issue 33 brought, from the registry:
	// each variant's own configuration (widths, depths, kernel sizes).
	var models []string
	for _, m := range sweep.Models() {
		if slices.Contains([]string{"mobilenet", "efficientnet", "convnext", "regnet", "vit"}, m.Family) {
			models = append(models, m.Name)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command(py, append([]string{"testdata/torchvision_pth.py", dir}, models...)...).CombinedOutput(); err != nil {
		t.Fatalf("torchvision_pth.py: %v\n%s", err, out)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	photos := testfixture.Photos{N: 48, W: 80, H: 72, Classes: []string{"red", "blue"},
		Paint: func(img *image.RGBA, _, cls int) {
			for p := 0; p < len(img.Pix); p += 4 {
				img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = byte(rng.IntN(128)+100*cls), byte(rng.IntN(128)), byte(rng.IntN(128)+100*(1-cls)), 255
			}
		}}.Write(t, t.TempDir())
	tr := newTrainer(t, t.TempDir())
	tr.Weights.CacheDir = t.TempDir()
	for _, model := range models {
		t.Run(model, func(t *testing.T) {
			cfg := sweep.Config{Model: model, Resolution: 64, Epochs: 1, Seed: 1, Data: photos, TrainLimit: 8, ValLimit: 4,
				Hyper: sweep.Hyper{BatchSize: 4, Optimizer: "sgd", LR: 0.01, Momentum: 0.9, Schedule: "constant"},
				Init:  &sweep.Init{Weights: filepath.Join(dir, model+".pth"), LRScale: 1, BatchNorm: sweep.BatchNormKeep}}
			cfg, err := tr.Prepare(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			last := trainToEnd(t, tr, cfg)
			if last == nil {
				t.Fatalf("%s from torchvision's .pth: no checkpoint", model)
			}
			// A finite loss: a strong model may reach 0 on two easy classes.
			if rec := last.Record; rec.EpochsDone != 1 || !(rec.Metrics[0].ValLoss >= 0) || math.IsInf(rec.Metrics[0].ValLoss, 0) {
				t.Fatalf("%s from torchvision's .pth: %d epochs, figures %+v", model, rec.EpochsDone, rec.Metrics)
			}
		})
	}
}
