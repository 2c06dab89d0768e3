package trainer_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// Two trainings in one process (worker --concurrency 2) end with the same
// weights as each alone: each model draws its dropout masks from its own
// generator, and initialisation takes one model at a time.
func TestConcurrentTrainingsMatchSequentialOnes(t *testing.T) {
	testfixture.Long(t, "trains four runs")
	tr := newTrainer(t, t.TempDir())
	cfgs := []sweep.Config{resumeConfig(), resumeConfig()}
	for i, res := range []int{32, 40} {
		cfgs[i].Model, cfgs[i].Resolution, cfgs[i].Epochs = "vgg11", res, 1 // dropout in its classifier
		cfgs[i].BatchSize, cfgs[i].TrainLimit, cfgs[i].ValLimit = 8, 16, 8
	}
	train := func(cfg sweep.Config) []byte {
		res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{})
		if err != nil {
			t.Error(err)
			return nil
		}
		return res.Last.Model
	}
	var alone [2][]byte
	for i, cfg := range cfgs {
		alone[i] = train(cfg)
	}
	var together [2][]byte
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			together[i] = train(cfg)
		}()
	}
	wg.Wait()
	for i := range cfgs {
		if alone[i] == nil || !bytes.Equal(alone[i], together[i]) {
			t.Errorf("%s@%d: weights trained concurrently differ from those trained alone", cfgs[i].Model, cfgs[i].Resolution)
		}
	}
}
