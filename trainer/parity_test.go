package trainer_test

import (
	"math/rand/v2"
	"os/exec"
	"strconv"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// parityCase is a model of the registry and the batch its parity tests
// feed it.
type parityCase struct {
	name   string
	n, res int
}

// parityCases are the registry's models that keep, each with its batch.
// EfficientNet gets 4 images at 96 px: with 2 at 32 px its last stages
// are 1x1 and BatchNorm over 2 values gives gradients of 1e8, so one step
// blows up its weights (in PyTorch alike) and the comparison is of NaNs.
// ResNet and RegNet get 4 at 64 px for the same reason (resnet34's and
// resnet50's weights are NaN after the step at 2 × 32 px).
func parityCases(keep func(sweep.ModelInfo) bool) []parityCase {
	var cases []parityCase
	for _, info := range sweep.Models() {
		if !keep(info) {
			continue
		}
		c := parityCase{name: info.Name, n: 2, res: 32}
		switch info.Family {
		case "efficientnet":
			c.n, c.res = 4, 96
		case "resnet", "regnet":
			c.n, c.res = 4, 64
		}
		cases = append(cases, c)
	}
	return cases
}

// Every model torchvision has, fresh and exported by ResoMap, loads into
// torchvision's model of the same name with strict=True and gives the same
// logits.
func TestTorchvisionParity(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	const c, nc = 3, 10
	for _, tc := range parityCases(func(info sweep.ModelInfo) bool { return info.Torchvision != "" }) {
		name, n, res := tc.name, tc.n, tc.res
		rng := rand.New(rand.NewPCG(1, 2))
		batch := dataset.Batch{Images: make([]byte, n*c*res*res), Labels: []int64{3, 7, 1, 8}[:n], C: c, H: res, W: res}
		for i := range batch.Images {
			batch.Images[i] = byte(rng.IntN(256))
		}
		t.Run(name, func(t *testing.T) {
			m, err := tr.Lib.NewModel(torch.ModelSpec{Name: name, InChannels: c, NumClasses: nc, InitSeed: 5, ImageSize: res,
				Momentum: 0.9, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// One training step first, so BatchNorm running statistics are
			// not their defaults and eval mode is really exercised.
			logits, weights, trainLoss := oneStepForParity(t, m, batch, nc, 0.01)
			wp, xp, lp := parityFiles(t, weights, batch.Images, logits)
			out, err := exec.Command(py, "testdata/parity.py", name, wp, xp, lp, strconv.Itoa(n), strconv.Itoa(c), strconv.Itoa(res),
				strconv.Itoa(res), strconv.Itoa(nc), "0.5", "0.25", "11", labelList(batch.Labels), strconv.FormatFloat(trainLoss, 'g', -1, 64)).CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("torchvision parity failed: %v", err)
			}
		})
	}
}
