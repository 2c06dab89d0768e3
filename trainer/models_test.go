package trainer_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// Every model trains at a small resolution with both optimisers, and its
// loss falls on a repeated batch.
func TestEveryModelTrains(t *testing.T) {
	testfixture.Long(t, "trains every model of the registry")
	tr := newTrainer(t, t.TempDir())
	// Eight images: with fewer, BatchNorm over resnet50's 1x1 last stage is
	// too noisy for the loss to fall reliably, in PyTorch too.
	const n, c, nc = 8, 3, 5
	for i, info := range sweep.Models() {
		opt, lr := torch.SGD, 0.002
		if i%2 == 1 {
			opt, lr = torch.AdamW, 1e-4
		}
		// EfficientNet and RegNet at 32 px end in 1x1 maps, where BatchNorm
		// over 8 values gives gradients that make SGD's loss jump about (in
		// PyTorch too; RegNet X failed so on libtorch 2.6): 64 px and a
		// smaller SGD step train them steadily.
		res := 32
		if info.Family == "efficientnet" || info.Family == "regnet" {
			res = 64
			if opt == torch.SGD {
				lr = 5e-5
			}
		}
		b := randomBatch(rand.New(rand.NewPCG(3, 4)), n, c, res, nc, false)
		t.Run(info.Name, func(t *testing.T) {
			m, err := tr.Lib.NewModel(torch.ModelSpec{Name: info.Name, InChannels: c, NumClasses: nc, InitSeed: 9, ImageSize: res,
				Optimizer: opt, Momentum: 0.9, WeightDecay: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
				Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var losses []float64
			for step := 0; step < 4; step++ {
				m.Seed(1) // the same dropout masks: one fixed objective
				m.ZeroGrad()
				l, _, err := m.ForwardBackward(b, 1, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Step(lr); err != nil {
					t.Fatal(err)
				}
				losses = append(losses, l/n)
			}
			if !(losses[3] < losses[0]) {
				t.Fatalf("%s (optimizer %d): loss did not fall on a repeated batch: %v", info.Name, opt, losses)
			}
		})
	}
}

// The bridge builds exactly the models of the registry: a model added to
// one side only is caught here, in either direction.
func TestBridgeBuildsTheRegistry(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	var registry []string
	for _, info := range sweep.Models() {
		registry = append(registry, info.Name)
	}
	bridge := tr.Lib.ModelNames()
	slices.Sort(registry)
	slices.Sort(bridge)
	if !slices.Equal(registry, bridge) {
		t.Fatalf("the bridge builds %v, the registry (sweep.Models) lists %v", bridge, registry)
	}
}
