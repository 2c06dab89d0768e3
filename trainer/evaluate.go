package trainer

import (
	"context"
	"runtime"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// Evaluation is a checkpoint's validation figures at one test resolution.
type Evaluation struct {
	Resolution int
	Loss, Acc  float64
	Images     int
}

// EvaluateAt evaluates the weights of a checkpoint of the prepared cfg
// (rec is its record) at each test resolution (ctx bounds fetching a
// TorchScript model's file): the validation images
// through cfg's validation transform at that size, in micro-batches of
// micro (the record's, so that at the training's own resolution the
// figures are the training's own, bit for bit). One model serves every
// size, normalised as it was trained (the record's mean/std); only its
// weights are loaded, not the optimiser's state. done gets each result as
// it comes (an error stops); progress hears cache builds.
func (t *Trainer) EvaluateAt(ctx context.Context, cfg sweep.Config, rec checkpoint.Record, weights []byte, resolutions []int, micro int,
	done func(Evaluation) error, progress func(res int, p dataset.BuildProgress)) error {
	info, err := sweep.LookupModel(cfg.Model)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var m *torch.Model
	defer func() {
		if m != nil {
			m.Close()
		}
	}()
	for _, res := range resolutions {
		if err := info.CheckResolution(res); err != nil {
			return err
		}
		ev, err := t.evaluateOne(ctx, cfg, rec, weights, res, micro, &m, progress)
		if err != nil {
			return err
		}
		if err := done(ev); err != nil {
			return err
		}
	}
	return nil
}

// evaluateOne opens the data at res (building *m from it the first time)
// and evaluates.
func (t *Trainer) evaluateOne(ctx context.Context, cfg sweep.Config, rec checkpoint.Record, weights []byte, res, micro int, m **torch.Model,
	progress func(int, dataset.BuildProgress)) (Evaluation, error) {
	at := cfg
	at.Resolution = res
	ds, err := t.OpenData(at, func(p dataset.BuildProgress) {
		if progress != nil {
			progress(res, p)
		}
	})
	if err != nil {
		return Evaluation{}, err
	}
	defer ds.Close()
	if *m == nil {
		mean, std := ds.Mean, ds.Std
		if d := rec.Data; d != nil && len(d.Mean) == ds.Train.C {
			mean, std = d.Mean, d.Std // the normalisation it was trained with
		}
		if *m, err = t.newModel(ctx, cfg, ds.Train.C, len(ds.Classes), mean, std); err != nil {
			return Evaluation{}, err
		}
		if err := restoreWeights(*m, weights); err != nil {
			return Evaluation{}, err
		}
	}
	loss, acc, err := evaluateSplit(*m, ds.Val, cfg.MicroBatchFor(micro))
	return Evaluation{Resolution: res, Loss: loss, Acc: acc, Images: ds.Val.N}, err
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
