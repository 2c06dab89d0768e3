package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/seed"
)

// Version is ResoMap's version, stamped into checkpoints.
const Version = "0.1.0"

// ErrInterrupted is returned when the context ended mid-training; the
// checkpoint of the step reached was handed to OnCheckpoint first.
var ErrInterrupted = errors.New("training interrupted")

// Trainer trains models through the libtorch bridge. It holds the process's
// resources (library, device, data cache); Train may be called repeatedly.
type Trainer struct {
	Lib            *Lib
	Device         string // "cpu" (default), "cuda", "cuda:N"
	MixedPrecision bool   // bf16 autocast; see UseFastGPUPaths
	ChannelsLast   bool   // channels-last memory format; see UseFastGPUPaths
	Data           dataset.Options
	Logger         *slog.Logger
	hashes         dataset.HashMemo // data set content hashes, per process
}

// dataOptions are the data options with the trainer's hash memo.
func (t *Trainer) dataOptions() dataset.Options {
	o := t.Data
	if o.Hashes == nil {
		o.Hashes = &t.hashes
	}
	return o
}

// New loads the bridge (libPath "" = default search) and sets libtorch's
// thread count (0 = all cores: libtorch starts with one here).
func New(libPath, device string, threads int) (*Trainer, error) {
	lib, err := Open(libPath)
	if err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := lib.SetThreads(threads); err != nil {
		return nil, err
	}
	if device == "" {
		device = "cpu"
	}
	if err := CheckDevice(device); err != nil {
		return nil, err
	}
	if strings.HasPrefix(device, "cuda") && lib.CUDADevices() == 0 {
		return nil, fmt.Errorf("%w: device %s, but libtorch %s at %s sees no CUDA device (a CPU build, or no driver)",
			ErrInvalid, device, lib.TorchVersion(), lib.Path())
	}
	return &Trainer{Lib: lib, Device: device, Logger: slog.Default()}, nil
}

// UseFastGPUPaths turns bf16 autocast and channels-last on when on is true
// and the device is CUDA, and off otherwise: on CPU they cost speed and
// change numerics for nothing.
func (t *Trainer) UseFastGPUPaths(on bool) {
	on = on && strings.HasPrefix(t.Device, "cuda")
	t.MixedPrecision, t.ChannelsLast = on, on
}

// Progress is reported after every training step.
type Progress struct {
	Epoch         int // 1-based epoch being trained
	Step          int // steps completed in this epoch
	StepsPerEpoch int
	Loss          float64 // mean loss of the last batch
	LR            float64
	ImagesPerSec  float64 // over this call's training steps
	SamplesSeen   int64
}

// RunOptions controls one call of Train.
type RunOptions struct {
	// UntilEpoch stops after this many epochs are done (0 = Config.Epochs):
	// the per-epoch activity trains one epoch per call.
	UntilEpoch int
	// MicroBatch splits each batch into micro-batches whose gradients are
	// accumulated (0 = the whole batch); the effective batch is unchanged.
	MicroBatch int
	// Mid-epoch checkpoints are handed out every CheckpointSteps steps or
	// CheckpointInterval, whichever comes first (0 = never).
	CheckpointSteps    int
	CheckpointInterval time.Duration
	OnProgress         func(Progress)
	// OnCheckpoint stores a checkpoint; an error aborts training.
	OnCheckpoint func(ctx context.Context, c *checkpoint.Checkpoint) error
}

// Result is where a Train call stopped.
type Result struct {
	Last              *checkpoint.Checkpoint // the last checkpoint handed out
	StepsRun          int
	TrainSeconds      float64 // time inside training steps
	EvalSeconds       float64 // validation
	CheckpointSeconds float64 // snapshots and OnCheckpoint (storing them)
}

// Prepare fills defaults, validates and stamps the data set's content hash
// into the config, so that its Hash names this exact training.
func (t *Trainer) Prepare(cfg Config) (Config, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	h, err := dataset.SourceHash(cfg.Data, t.dataOptions())
	if err != nil {
		return cfg, err
	}
	cfg.DataHash = h
	return cfg, nil
}

// NewModel builds the model and optimiser of cfg for a data set.
func (t *Trainer) NewModel(cfg Config, ds *dataset.Set) (*Model, error) {
	opt := SGD
	if cfg.Optimizer == "adamw" {
		opt = AdamW
	}
	return t.Lib.NewModel(ModelSpec{
		Name: cfg.Model, InChannels: ds.Train.C, NumClasses: len(ds.Classes), Device: t.Device,
		InitSeed:  seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "init"),
		Optimizer: opt, Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay,
		Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, Mean: ds.Mean, Std: ds.Std,
		MixedPrecision: t.MixedPrecision, ChannelsLast: t.ChannelsLast,
	})
}

// OpenData opens cfg's data set at cfg's resolution (cached, memory-mapped).
func (t *Trainer) OpenData(cfg Config) (*dataset.Set, error) {
	ds, err := dataset.Open(cfg.Data, cfg.Resolution, t.dataOptions())
	if err != nil {
		return nil, err
	}
	if len(ds.Classes) < 2 {
		ds.Close()
		return nil, fmt.Errorf("%w: data set %s has %d classes", dataset.ErrBadData, ds.Name, len(ds.Classes))
	}
	ds.Train = ds.Train.Limit(cfg.TrainLimit)
	ds.Val = ds.Val.Limit(cfg.ValLimit)
	if ds.Train.N < cfg.BatchSize {
		ds.Close()
		return nil, fmt.Errorf("%w: batch_size %d exceeds the %d training images", ErrInvalid, cfg.BatchSize, ds.Train.N)
	}
	return ds, nil
}

// Train runs cfg from checkpoint from (nil = from scratch) until
// opts.UntilEpoch epochs are done. When ctx ends it stops at the next step
// boundary, hands out a checkpoint of that step and returns ErrInterrupted.
func (t *Trainer) Train(ctx context.Context, cfg Config, from *checkpoint.Checkpoint, opts RunOptions) (*Result, error) {
	cfg, err := t.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	info, _ := LookupModel(cfg.Model)
	until := opts.UntilEpoch
	if until <= 0 || until > cfg.Epochs {
		until = cfg.Epochs
	}
	micro := opts.MicroBatch
	if micro <= 0 || micro > cfg.BatchSize {
		micro = cfg.BatchSize
	}
	if opts.OnCheckpoint == nil {
		opts.OnCheckpoint = func(context.Context, *checkpoint.Checkpoint) error { return nil }
	}
	cfgJSON, _ := json.Marshal(cfg)
	rec := checkpoint.Record{
		Format: checkpoint.Format, Model: cfg.Model, Family: info.Family, Resolution: cfg.Resolution,
		Epochs: cfg.Epochs, ConfigHash: cfg.Hash(), Config: cfgJSON, Device: t.Device,
		Precision: "fp32", ChannelsLast: t.ChannelsLast,
		Seeds:    checkpoint.Seeds{Sweep: cfg.Seed, Init: seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "init")},
		Versions: checkpoint.Versions{ResoMap: Version, Torch: t.Lib.TorchVersion(), ABI: ABIVersion, Go: runtime.Version()},
	}
	if t.MixedPrecision {
		rec.Precision = "bf16-autocast"
	}
	if from != nil {
		if err := from.Verify(); err != nil {
			return nil, err
		}
		if from.Record.ConfigHash != rec.ConfigHash || from.Record.Model != cfg.Model || from.Record.Resolution != cfg.Resolution {
			return nil, fmt.Errorf("%w: checkpoint of %s@%d (config %.12s), training %s@%d (config %.12s)", checkpoint.ErrForeign,
				from.Record.Model, from.Record.Resolution, from.Record.ConfigHash, cfg.Model, cfg.Resolution, rec.ConfigHash)
		}
		if p := from.Record.Precision; p != "" && p != rec.Precision {
			// Allowed (a GPU run may go on on a CPU worker), but the figures
			// of this combination then mix two numerics.
			t.Logger.Warn("resuming with another precision", "model", cfg.Model, "resolution", cfg.Resolution,
				"checkpoint", p, "now", rec.Precision)
		}
	}
	// One OS thread drives libtorch for the whole run: OpenMP keeps one
	// thread team per calling thread, and CUDA autocast state is per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ds, err := t.OpenData(cfg)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	m, err := t.NewModel(cfg, ds)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	steps := dataset.StepsPerEpoch(ds.Train.N, cfg.BatchSize)
	rec.StepsPerEpoch = steps
	if from != nil {
		if from.Record.StepsPerEpoch != steps {
			return nil, fmt.Errorf("%w: checkpoint has %d steps per epoch, data gives %d", checkpoint.ErrForeign, from.Record.StepsPerEpoch, steps)
		}
		if err := restore(m, from.Model, from.Optim); err != nil {
			return nil, err
		}
		r := from.Record
		rec.EpochsDone, rec.StepInEpoch, rec.SamplesSeen = r.EpochsDone, r.StepInEpoch, r.SamplesSeen
		rec.Metrics = append([]checkpoint.EpochMetrics(nil), r.Metrics...)
		rec.Partial = r.Partial
		rec.BestValLoss, rec.BestValAcc, rec.BestEpoch = r.BestValLoss, r.BestValAcc, r.BestEpoch
	}
	res := &Result{}
	meta := map[string]string{"format": "pt", "model": cfg.Model, "resolution": fmt.Sprint(cfg.Resolution)}
	emit := func(ctx context.Context, r checkpoint.Record) error {
		t0 := time.Now()
		defer func() { res.CheckpointSeconds += time.Since(t0).Seconds() }()
		r.MicroBatch = micro
		r.CreatedAt = time.Now().UTC()
		ms, os, err := snapshot(m, meta)
		if err != nil {
			return err
		}
		c := &checkpoint.Checkpoint{Record: r, Model: ms, Optim: os}
		c.Seal()
		if err := opts.OnCheckpoint(ctx, c); err != nil {
			return fmt.Errorf("store checkpoint %s@%d epoch %d step %d: %w", r.Model, r.Resolution, r.EpochsDone+1, r.StepInEpoch, err)
		}
		res.Last = c
		return nil
	}
	total := cfg.Epochs * steps
	var imgs int64
	for rec.EpochsDone < until {
		epoch := rec.EpochsDone // 0-based
		order := dataset.EpochOrder(ds.Train.N, seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "order", epoch))
		aug := dataset.Augment{CropPadding: cfg.CropPadding, Flip: cfg.Flip}
		bctx, stopBatches := context.WithCancel(ctx)
		batches := dataset.Batches(bctx, ds.Train, order, cfg.BatchSize, rec.StepInEpoch, aug, func(step int) uint64 {
			return seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "augment", epoch, step)
		})
		lastCkpt := time.Now()
		var lr float64
		// The batch of the next step is staged on the device while this step
		// computes, and the step's figures are read only after that, so a GPU
		// never waits for an upload or sits idle while Go reads a loss.
		var next dataset.Batch
		haveNext := false
		fetch := func() error {
			select {
			case nb, ok := <-batches:
				if !ok {
					return nil
				}
				if err := m.Stage(Batch{Images: nb.Images, Labels: nb.Labels, C: nb.C, H: nb.H, W: nb.W}); err != nil {
					return fmt.Errorf("%s@%d epoch %d step %d: stage batch: %w", cfg.Model, cfg.Resolution, epoch+1, nb.Step+1, err)
				}
				next, haveNext = nb, true
			case <-ctx.Done():
			}
			return nil
		}
		var mets []MicroBatchMetrics
		for rec.StepInEpoch < steps {
			if ctx.Err() != nil {
				stopBatches()
				rec.Kind = checkpoint.KindMid
				if err := emit(context.WithoutCancel(ctx), rec); err != nil {
					return res, err
				}
				return res, fmt.Errorf("%w at epoch %d step %d: %w", ErrInterrupted, epoch+1, rec.StepInEpoch, context.Cause(ctx))
			}
			t0 := time.Now()
			if !haveNext {
				if err := fetch(); err != nil {
					stopBatches()
					return res, err
				}
				if !haveNext {
					continue // cancelled
				}
			}
			b := next
			haveNext = false
			lr = cfg.LRAt(epoch*steps+b.Step, total, steps)
			t.Lib.ManualSeed(seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "torch", epoch, b.Step))
			m.ZeroGrad()
			for lo := 0; lo < b.N(); lo += micro {
				hi := min(lo+micro, b.N())
				if err := m.ForwardBackwardStaged(lo, hi, float64(hi-lo)/float64(b.N()), cfg.LabelSmoothing); err != nil {
					stopBatches()
					return res, fmt.Errorf("%s@%d epoch %d step %d (micro-batch %d): %w", cfg.Model, cfg.Resolution, epoch+1, b.Step+1, micro, err)
				}
			}
			if err := m.Step(lr); err != nil {
				stopBatches()
				return res, fmt.Errorf("%s@%d optimiser step: %w", cfg.Model, cfg.Resolution, err)
			}
			if rec.StepInEpoch+1 < steps {
				if err := fetch(); err != nil {
					stopBatches()
					return res, err
				}
			}
			var err error
			if mets, err = m.TakeMetrics(mets[:0]); err != nil {
				stopBatches()
				return res, fmt.Errorf("%s@%d epoch %d step %d (micro-batch %d): %w", cfg.Model, cfg.Resolution, epoch+1, b.Step+1, micro, err)
			}
			var lossSum float64
			var correct int64
			for _, x := range mets {
				lossSum += x.LossSum
				correct += x.Correct
			}
			if math.IsNaN(lossSum) || math.IsInf(lossSum, 0) {
				stopBatches()
				return res, fmt.Errorf("%s@%d epoch %d step %d: loss is %v (diverged; lower lr)", cfg.Model, cfg.Resolution, epoch+1, b.Step+1, lossSum)
			}
			dt := time.Since(t0).Seconds()
			res.TrainSeconds += dt
			res.StepsRun++
			imgs += int64(b.N())
			rec.StepInEpoch++
			rec.SamplesSeen += int64(b.N())
			rec.Partial.LossSum += lossSum
			rec.Partial.Correct += correct
			rec.Partial.Seen += int64(b.N())
			rec.Partial.Seconds += dt
			if opts.OnProgress != nil {
				opts.OnProgress(Progress{Epoch: epoch + 1, Step: rec.StepInEpoch, StepsPerEpoch: steps, Loss: lossSum / float64(b.N()),
					LR: lr, ImagesPerSec: float64(imgs) / res.TrainSeconds, SamplesSeen: rec.SamplesSeen})
			}
			due := opts.CheckpointSteps > 0 && rec.StepInEpoch%opts.CheckpointSteps == 0 ||
				opts.CheckpointInterval > 0 && time.Since(lastCkpt) >= opts.CheckpointInterval
			if due && rec.StepInEpoch < steps {
				rec.Kind = checkpoint.KindMid
				if err := emit(ctx, rec); err != nil {
					stopBatches()
					return res, err
				}
				lastCkpt = time.Now()
			}
		}
		stopBatches()
		t0 := time.Now()
		vloss, vacc, err := t.evaluate(m, ds.Val, micro)
		if err != nil {
			return res, fmt.Errorf("%s@%d validate epoch %d: %w", cfg.Model, cfg.Resolution, epoch+1, err)
		}
		res.EvalSeconds += time.Since(t0).Seconds()
		p := rec.Partial
		rec.Metrics = append(rec.Metrics, checkpoint.EpochMetrics{
			Epoch: epoch + 1, TrainLoss: p.LossSum / float64(p.Seen), TrainAcc: float64(p.Correct) / float64(p.Seen),
			ValLoss: vloss, ValAcc: vacc, LR: lr, Seconds: p.Seconds + time.Since(t0).Seconds(), ImagesPS: float64(p.Seen) / p.Seconds,
		})
		rec.EpochsDone++
		rec.StepInEpoch = 0
		rec.Partial = checkpoint.Partial{}
		rec.IsBest = rec.BestEpoch == 0 || vloss < rec.BestValLoss
		if rec.IsBest {
			rec.BestValLoss, rec.BestValAcc, rec.BestEpoch = vloss, vacc, epoch+1
		}
		rec.IsFinal = rec.EpochsDone == cfg.Epochs
		rec.Kind = checkpoint.KindEpoch
		if err := emit(context.WithoutCancel(ctx), rec); err != nil {
			return res, err
		}
		rec.IsBest, rec.IsFinal = false, false
		t.Logger.Info("epoch done", "model", cfg.Model, "resolution", cfg.Resolution, "epoch", epoch+1,
			"train_loss", rec.Metrics[len(rec.Metrics)-1].TrainLoss, "val_loss", vloss, "val_acc", vacc)
	}
	return res, nil
}

// evaluate returns mean loss and accuracy over a split.
func (t *Trainer) evaluate(m *Model, s dataset.Split, batch int) (loss, acc float64, err error) {
	var lossSum float64
	var correct int64
	for _, b := range dataset.ValBatches(s, batch) {
		l, c, err := m.Evaluate(Batch{Images: b.Images, Labels: b.Labels, C: b.C, H: b.H, W: b.W}, nil)
		if err != nil {
			return 0, 0, err
		}
		lossSum += l
		correct += c
	}
	return lossSum / float64(s.N), float64(correct) / float64(s.N), nil
}
