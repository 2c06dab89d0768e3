package trainer_test

import (
	"image"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
)

// One model of each family since ResNet, initialised from a torchvision
// .pth written by Debian's python3-torchvision (its 1000-class head
// replaced for the data's two), trains an epoch at 64 px on a photo
// folder; vit_b_16 does from weights made for 224 px, its position
// embedding resized.
func TestTorchvisionWeightsStartEveryFamily(t *testing.T) {
	py := pythonTorch(t)
	models := []string{"mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "vit_b_16"}
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
			cfg := sweep.Config{Model: model, Resolution: 64, Epochs: 1, Seed: 1, Data: photos, TrainLimit: 16, ValLimit: 8,
				Hyper: sweep.Hyper{BatchSize: 8, Optimizer: "sgd", LR: 0.01, Momentum: 0.9, Schedule: "constant"},
				Init:  &sweep.Init{Weights: filepath.Join(dir, model+".pth"), LRScale: 1, BatchNorm: sweep.BatchNormKeep}}
			cfg, err := tr.Prepare(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			last := trainToEnd(t, tr, cfg)
			if last == nil || last.Record.EpochsDone != 1 || !(last.Record.Metrics[0].ValLoss > 0) {
				t.Fatalf("%s from torchvision's .pth: %+v", model, last)
			}
		})
	}
}
