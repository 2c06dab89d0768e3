package trainer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/resomap/resomap/trainer"
)

// A run that fails at its first steps (a diverged loss here; a CUDA OOM on
// a GPU) joins its batch producer before the data set is unmapped: over
// many runs, none reads unmapped memory (which would crash the process).
func TestEarlyErrorsJoinTheBatchProducer(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	cfg := resumeConfig()
	cfg.LR, cfg.MinLR, cfg.BatchSize, cfg.TrainLimit = 1e30, 0, 8, 640
	for range 20 {
		_, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{})
		if err == nil || !strings.Contains(err.Error(), "diverged") {
			t.Fatalf("error %v, want a diverged loss", err)
		}
	}
}
