package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// Every model of the families since ResNet (the registry's), each
// initialised from a state dict that Debian's python3-torchvision wrote
// for it (vit_b_16's for 224 px, its position embedding resized), trains
// an epoch at 64 px on a photo folder in one sweep through the dev server
// and a worker (init.weights names each model's file with {model}).
func TestSweepOfEveryModelFromTorchvisionWeights(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, torchvision").CombinedOutput(); err != nil {
		t.Fatalf("needs Debian's python3-torch and python3-torchvision (make deps): %v\n%s", err, out)
	}
	var models []string
	for _, info := range sweep.Models() {
		if !slices.Contains([]string{"cnn", "vgg", "resnet"}, info.Family) {
			models = append(models, info.Name)
		}
	}
	weights := t.TempDir()
	if out, err := exec.Command(py, append([]string{"../trainer/testdata/torchvision_pth.py", weights}, models...)...).CombinedOutput(); err != nil {
		t.Fatalf("torchvision_pth.py: %v\n%s", err, out)
	}
	photos := t.TempDir()
	writePhotos(t, photos)
	store, tq := t.TempDir(), "tq-families"
	startWorker(t, tq, store)
	spec := writeSpec(t, fmt.Sprintf(`name: families
models: [%s]
resolutions: [64]
epochs: 1
data: %s
allow_upsampling: true
train_limit: 16
val_limit: 8
seed: 3
max_parallel: 1
hyper: {batch_size: 8, optimizer: sgd, lr: 0.01, momentum: 0.9, schedule: constant}
init: {weights: %q}
`, strings.Join(models, ", "), photos, filepath.Join(weights, "{model}.pth")))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, dial(t), "sweep-families", 20*time.Minute)
	if len(p.Combos) != len(models) {
		t.Fatalf("%d combinations, want %d", len(p.Combos), len(models))
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.EpochsDone != 1 || !strings.Contains(o.StartedFrom, o.Model+".pth") {
			t.Errorf("%s: %s (%s), %d epochs, started from %q", o.ID(), o.Status, o.Reason, o.EpochsDone, o.StartedFrom)
		}
	}
}
