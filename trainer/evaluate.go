package trainer

import (
	"fmt"
	"runtime"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// Evaluation is a checkpoint's validation figures at one test resolution.
type Evaluation struct {
	Loss, Acc float64
	Images    int
}

// EvaluateAt evaluates checkpoint c of the prepared cfg at test resolution
// res: the validation images through cfg's validation transform at that
// size, in micro-batches of micro (the record's, so that at the training's
// own resolution the figures are the training's own, bit for bit). c comes
// verified (Repo.Load verifies).
func (t *Trainer) EvaluateAt(cfg sweep.Config, c *checkpoint.Checkpoint, res, micro int, progress func(dataset.BuildProgress)) (Evaluation, error) {
	at := cfg
	at.Resolution = res
	if info, err := sweep.LookupModel(cfg.Model); err != nil {
		return Evaluation{}, err
	} else if err := info.CheckResolution(res); err != nil {
		return Evaluation{}, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ds, err := t.OpenData(at, progress)
	if err != nil {
		return Evaluation{}, err
	}
	defer ds.Close()
	m, err := t.NewModel(at, ds)
	if err != nil {
		return Evaluation{}, err
	}
	defer m.Close()
	if err := restore(m, c.Model, c.Optim); err != nil {
		return Evaluation{}, fmt.Errorf("restore %s@%d for %d px: %w", cfg.Model, cfg.Resolution, res, err)
	}
	loss, acc, err := evaluateSplit(m, ds.Val, cfg.MicroBatchFor(micro))
	return Evaluation{Loss: loss, Acc: acc, Images: ds.Val.N}, err
}

// evaluateSplit is the validation loss and accuracy of m on s, in batches
// of micro.
func evaluateSplit(m *torch.Model, s dataset.Split, micro int) (loss, acc float64, err error) {
	var lossSum float64
	var correct int64
	for _, b := range dataset.ValBatches(s, micro) {
		l, c, err := m.Evaluate(b, nil)
		if err != nil {
			return 0, 0, err
		}
		lossSum += l
		correct += c
	}
	return lossSum / float64(s.N), float64(correct) / float64(s.N), nil
}
