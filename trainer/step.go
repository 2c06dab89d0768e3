package trainer

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/seed"
	"github.com/resomap/resomap/torch"
)

// stagedFeed hands the step loop its batches, the next one already staged
// on the device: the batch of step k+1 is uploaded while step k computes, so
// a GPU never waits for an upload.
type stagedFeed struct {
	m       *torch.Model
	batches <-chan dataset.Batch
	cancel  context.CancelFunc
	next    dataset.Batch
	staged  bool
	stopped bool
}

// startFeed starts the batch producer of the current epoch, from the step
// reached.
func (r *run) startFeed(ctx context.Context) *stagedFeed {
	cfg, epoch := r.cfg, r.rec.EpochsDone // 0-based
	order := dataset.EpochOrder(r.ds.Train.N, seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "order", epoch))
	aug := dataset.Augment{CropPadding: cfg.CropPadding, Flip: cfg.Flip, Workers: r.t.LoaderWorkers}
	bctx, cancel := context.WithCancel(ctx)
	batches := dataset.Batches(bctx, r.ds.Train, order, cfg.BatchSize, r.rec.StepInEpoch, aug, func(step int) uint64 {
		return seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "augment", epoch, step)
	})
	return &stagedFeed{m: r.m, batches: batches, cancel: cancel}
}

// stage takes the producer's next batch and stages it on the device. It
// stages nothing when ctx ends first.
func (f *stagedFeed) stage(ctx context.Context) error {
	select {
	case b, ok := <-f.batches:
		if !ok {
			return nil
		}
		if err := f.m.Stage(b); err != nil {
			return fmt.Errorf("stage batch of step %d: %w", b.Step+1, err)
		}
		f.next, f.staged = b, true
	case <-ctx.Done():
	}
	return nil
}

// stop ends the producer and waits until it has exited, so the data set's
// memory may be unmapped after it.
func (f *stagedFeed) stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	f.cancel()
	for range f.batches {
	}
}

// step trains one step: the staged batch, split into micro-batches, then
// the optimiser; it stages the next batch before reading the step's figures.
func (r *run) step(ctx context.Context, feed *stagedFeed) error {
	t0 := time.Now()
	if !feed.staged {
		if err := feed.stage(ctx); err != nil {
			return fmt.Errorf("%s: %w", r.where(), err)
		}
		if !feed.staged {
			if ctx.Err() != nil {
				return nil // the epoch loop checkpoints and stops
			}
			return fmt.Errorf("%s: the batch producer ended early", r.where())
		}
	}
	b := feed.next
	feed.staged = false
	epoch := r.rec.EpochsDone
	r.lr = r.cfg.LRAt(epoch*r.steps+b.Step, r.cfg.Epochs*r.steps, r.steps)
	if err := r.forwardBackward(b); err != nil {
		return err
	}
	if err := r.m.Step(r.lr); err != nil {
		return fmt.Errorf("%s@%d optimiser step: %w", r.cfg.Model, r.cfg.Resolution, err)
	}
	if r.rec.StepInEpoch+1 < r.steps {
		if err := feed.stage(ctx); err != nil {
			return fmt.Errorf("%s: %w", r.where(), err)
		}
	}
	lossSum, correct, err := r.takeFigures()
	if err != nil {
		return err
	}
	r.account(b.N(), lossSum, correct, time.Since(t0).Seconds())
	return nil
}

// forwardBackward seeds the step's randomness and accumulates the gradient
// of the staged batch, one micro-batch at a time.
func (r *run) forwardBackward(b dataset.Batch) error {
	cfg := r.cfg
	if err := r.m.Seed(seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "torch", r.rec.EpochsDone, b.Step)); err != nil {
		return fmt.Errorf("%s: seed: %w", r.where(), err)
	}
	if err := r.m.ZeroGrad(); err != nil {
		return fmt.Errorf("%s: zero gradients: %w", r.where(), err)
	}
	for lo := 0; lo < b.N(); lo += r.micro {
		hi := min(lo+r.micro, b.N())
		if err := r.m.ForwardBackwardStaged(lo, hi, float64(hi-lo)/float64(b.N()), cfg.LabelSmoothing); err != nil {
			return fmt.Errorf("%s (micro-batch %d): %w", r.where(), r.micro, err)
		}
	}
	return nil
}

// takeFigures waits for the step's loss and correct count.
func (r *run) takeFigures() (lossSum float64, correct int64, err error) {
	mets, err := r.m.TakeMetrics(nil)
	if err != nil {
		return 0, 0, fmt.Errorf("%s (micro-batch %d): %w", r.where(), r.micro, err)
	}
	for _, x := range mets {
		lossSum += x.LossSum
		correct += x.Correct
	}
	if math.IsNaN(lossSum) || math.IsInf(lossSum, 0) {
		return 0, 0, fmt.Errorf("%w: %s: loss is %v (a lower learning rate may help)", ErrDiverged, r.where(), lossSum)
	}
	return lossSum, correct, nil
}

// account adds a finished step to the record and reports it.
func (r *run) account(n int, lossSum float64, correct int64, seconds float64) {
	r.res.TrainSeconds += seconds
	r.res.StepsRun++
	r.imgs += int64(n)
	r.rec.StepInEpoch++
	r.rec.SamplesSeen += int64(n)
	r.rec.Partial.LossSum += lossSum
	r.rec.Partial.Correct += correct
	r.rec.Partial.Seen += int64(n)
	r.rec.Partial.Seconds += seconds
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(StepProgress{Epoch: r.rec.EpochsDone + 1, Step: r.rec.StepInEpoch, StepsPerEpoch: r.steps,
			Loss: lossSum / float64(n), LR: r.lr, ImagesPerSec: float64(r.imgs) / r.res.TrainSeconds, SamplesSeen: r.rec.SamplesSeen})
	}
}
