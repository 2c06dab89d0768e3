package trainer_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// A fresh model exported by ResoMap loads into torchvision's model of the
// same name with strict=True and gives the same logits.
func TestTorchvisionParity(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	const n, c, res, nc = 2, 3, 32, 10
	rng := rand.New(rand.NewPCG(1, 2))
	batch := dataset.Batch{Images: make([]byte, n*c*res*res), Labels: []int64{3, 7}, C: c, H: res, W: res}
	for i := range batch.Images {
		batch.Images[i] = byte(rng.IntN(256))
	}
	for _, name := range []string{"vgg11", "vgg11_bn", "resnet18", "mobilenet_v3_large", "mobilenet_v3_small",
		"efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"} {
		t.Run(name, func(t *testing.T) {
			m, err := tr.Lib.NewModel(torch.ModelSpec{Name: name, InChannels: c, NumClasses: nc, InitSeed: 5,
				Momentum: 0.9, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// One training step first, so BatchNorm running statistics are
			// not their defaults and eval mode is really exercised.
			if _, _, err := m.ForwardBackward(batch, 1, 0); err != nil {
				t.Fatal(err)
			}
			if err := m.Step(0.01); err != nil {
				t.Fatal(err)
			}
			logits := make([]float32, n*nc)
			if _, _, err := m.Evaluate(batch, logits); err != nil {
				t.Fatal(err)
			}
			weights, _, err := trainer.Export(m)
			if err != nil {
				t.Fatal(err)
			}
			// A training-mode loss with the model's generator seeded: the
			// same dropout masks as PyTorch's after torch.manual_seed.
			if err := m.Seed(11); err != nil {
				t.Fatal(err)
			}
			trainLoss, _, err := m.ForwardBackward(batch, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			wp, xp, lp := filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "x.bin"), filepath.Join(dir, "l.bin")
			os.WriteFile(wp, weights, 0o644)
			os.WriteFile(xp, batch.Images, 0o644)
			os.WriteFile(lp, unsafe.Slice((*byte)(unsafe.Pointer(&logits[0])), 4*len(logits)), 0o644)
			out, err := exec.Command(py, "testdata/parity.py", name, wp, xp, lp, "2", "3", "32", "32", "10", "0.5", "0.25",
				"11", "3,7", strconv.FormatFloat(trainLoss, 'g', -1, 64)).CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("torchvision parity failed: %v", err)
			}
		})
	}
}
