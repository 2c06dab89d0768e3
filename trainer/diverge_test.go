package trainer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/trainer"
)

// A training whose loss becomes NaN (a far too large learning rate) fails
// with ErrDiverged, naming the epoch, and commits no epoch record (JSON
// cannot hold NaN).
func TestDivergedTrainingFailsClearly(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	cfg := resumeConfig()
	cfg.LR, cfg.WarmupEpochs = 1e30, 0
	var epochs int
	_, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{
		OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
			if c.Record.Kind == checkpoint.KindEpoch {
				epochs++
			}
			return nil
		},
	})
	if !errors.Is(err, trainer.ErrDiverged) {
		t.Fatalf("training with lr 1e30: %v, want ErrDiverged", err)
	}
	if epochs != 0 {
		t.Fatalf("%d epoch records committed with a NaN loss", epochs)
	}
	t.Log(err)
}
