package trainer_test

import (
	"context"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// The small CNN learns Fashion-MNIST: a real learning signal, not "it runs".
func TestSmallCNNLearnsFashionMNIST(t *testing.T) {
	testfixture.Long(t, "trains two epochs of 20,000 images")
	tr := newTrainer(t, t.TempDir())
	cfg := sweep.Config{
		Model: "smallcnn", Resolution: 28, Epochs: 2,
		Hyper: sweep.Hyper{BatchSize: 64, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
			Schedule: "cosine", WarmupEpochs: 0.2},
		Seed: 1, Data: "fashion-mnist", TrainLimit: 20000, ValLimit: 5000,
	}
	var ips float64
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{
		OnProgress: func(p trainer.StepProgress) { ips = p.ImagesPerSec },
	})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Last.Record.Metrics
	t.Logf("metrics %+v, %.0f img/s", m, ips)
	if acc := m[len(m)-1].ValAcc; acc < 0.80 {
		t.Fatalf("validation accuracy %.3f after %d epochs, want >= 0.80", acc, len(m))
	}
	if m[1].TrainLoss >= m[0].TrainLoss {
		t.Errorf("training loss did not fall: %v -> %v", m[0].TrainLoss, m[1].TrainLoss)
	}
}
