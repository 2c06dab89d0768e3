package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/internal/gpustat"
	"github.com/resomap/resomap/internal/hoststat"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// The phases of a run, as OnPhase reports them.
const (
	PhaseOpeningData   = "opening data"
	PhaseBuildingModel = "building model"
	PhaseTraining      = "training"
	PhaseValidating    = "validating"
	// PhaseSavingCheckpoint: waiting for an epoch's checkpoint to be stored.
	PhaseSavingCheckpoint = "saving checkpoint"
)

// StepProgress is reported after every training step.
type StepProgress struct {
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
	OnProgress         func(StepProgress)
	// OnPhase hears what the run does next (opening data, training,
	// validating, ...), so the caller can report it while it takes long.
	OnPhase func(phase string)
	// OnCheckpoint stores a checkpoint; an error aborts training. Mid-epoch
	// checkpoints are handed to it in the background, one at a time, in
	// order.
	OnCheckpoint func(ctx context.Context, c *checkpoint.Checkpoint) error
	// StoreFiles, when set, stores an epoch checkpoint's tensor files while
	// validation runs; OnCheckpoint then gets the checkpoint with
	// FilesStored set, to commit its record.
	StoreFiles func(ctx context.Context, c *checkpoint.Checkpoint) error
	// DeviceShare, when set, is the caller's count of this training's own
	// device seconds and its wall seconds so far in this call (the
	// worker's device is shared between trainings): each epoch's figures
	// then carry its own device time (EpochMetrics.DeviceSeconds), so a
	// training resumed by another run knows what its earlier epochs cost.
	DeviceShare func() (own, wall float64)
}

// Result is where a Train call stopped.
type Result struct {
	Last              *checkpoint.Checkpoint // the last checkpoint handed out
	StepsRun          int
	TrainSeconds      float64 // time inside training steps
	EvalSeconds       float64 // validation
	CheckpointSeconds float64 // snapshots, and waiting for checkpoints to be stored
}

// Train runs cfg from checkpoint from (nil = from scratch) until
// opts.UntilEpoch epochs are done. When ctx ends it stops at the next step
// boundary, hands out a checkpoint of that step and returns ErrInterrupted.
// cfg may come prepared (by Prepare, with its data hash); otherwise Train
// prepares it.
func (t *Trainer) Train(ctx context.Context, cfg sweep.Config, from *checkpoint.Checkpoint, opts RunOptions) (*Result, error) {
	s, err := t.Open(ctx, cfg, from, opts.OnPhase)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Train(ctx, opts)
}

// Session is a training held open between Train calls: its data set, model
// and optimiser stay in memory at Record. A worker keeps one after an epoch
// (a resident model), so that the next epoch goes on without a download or
// restore; the weights are the same as after a restore, bit for bit
// (tested). After a failed or interrupted Train, Close it.
type Session struct{ r *run }

// Open opens cfg's data set, builds its model and resumes from (nil: from
// scratch, or from cfg's pretrained weights, fetched in ctx), reporting
// phases to onPhase (nil: nowhere).
func (t *Trainer) Open(ctx context.Context, cfg sweep.Config, from *checkpoint.Checkpoint, onPhase func(string)) (*Session, error) {
	var err error
	if cfg.DataHash == "" {
		if cfg, err = t.Prepare(ctx, cfg); err != nil {
			return nil, err
		}
	}
	r, err := t.newRun(cfg, from)
	if err != nil {
		return nil, err
	}
	phase := onPhase
	if phase == nil {
		phase = func(string) {}
	}
	// As in training: one OS thread drives libtorch in a call.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Whatever ends Open early (an error, or a panic its caller contains)
	// frees what it opened: the mapped data cache and the model.
	opened := false
	defer func() {
		if !opened {
			r.close()
		}
	}()
	phase(PhaseOpeningData)
	if r.ds, err = t.OpenData(cfg, t.buildReporter(cfg, phase)); err != nil {
		return nil, err
	}
	r.rec.Data = dataInfo(r.ds, cfg)
	describeInputs(r.meta, r.rec.Data, cfg.Resolution)
	phase(PhaseBuildingModel)
	if r.m, err = t.NewModel(ctx, cfg, r.ds); err != nil {
		return nil, err
	}
	if err := r.resume(ctx, from); err != nil {
		return nil, err
	}
	opened = true
	return &Session{r: r}, nil
}

// Train runs the session until opts.UntilEpoch epochs are done (see
// Trainer.Train).
func (s *Session) Train(ctx context.Context, opts RunOptions) (*Result, error) {
	r := s.r
	if err := r.cfg.CheckMicroBatch(opts.MicroBatch); err != nil {
		return &Result{}, err
	}
	r.use(opts)
	// One OS thread drives libtorch for the whole call: OpenMP keeps one
	// thread team per calling thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for r.rec.EpochsDone < r.until {
		if err := r.epoch(ctx); err != nil {
			return r.res, errors.Join(err, r.settle())
		}
	}
	return r.res, r.settle()
}

// Record is where the session stands (after its last Train call).
func (s *Session) Record() checkpoint.Record { return s.r.rec }

// Config is the session's prepared config.
func (s *Session) Config() sweep.Config { return s.r.cfg }

// DataBuildSeconds is how long opening the session spent building its
// data cache (0 when the cache was there).
func (s *Session) DataBuildSeconds() float64 { return s.r.ds.BuildSeconds }

// Close frees the model and unmaps the data set.
func (s *Session) Close() { s.r.close() }

// close frees the run's model and data set, either of which may not be
// open yet.
func (r *run) close() {
	if r.m != nil {
		r.m.Close()
	}
	if r.ds != nil {
		r.ds.Close()
	}
}

// buildReporter reports a data cache build to the run's phase (the activity
// heartbeats it) and to the log every ten seconds.
func (t *Trainer) buildReporter(cfg sweep.Config, phase func(string)) func(dataset.BuildProgress) {
	var logged time.Time
	return func(p dataset.BuildProgress) {
		phase(PhaseOpeningData + ": " + p.String())
		if time.Since(logged) >= 10*time.Second || p.Done == p.Total {
			logged = time.Now()
			t.Logger.Info(p.String(), "data", cfg.Data, "done", p.Done, "total", p.Total, "skipped", p.Skipped)
		}
	}
}

// dataInfo describes the data set a run trains on, for its checkpoints.
func dataInfo(ds *dataset.Set, cfg sweep.Config) *sweep.DataInfo {
	return &sweep.DataInfo{Augment: ds.Augment, Classes: ds.Classes, Mean: ds.Mean, Std: ds.Std,
		ValTransform: ds.ValTransform(), TrainImages: ds.Train.N, ValImages: ds.Val.N,
		SkippedImages: ds.Skipped, NativeSide: ds.NativeSide}
}

// describeInputs puts into the safetensors metadata what a PyTorch user
// needs to feed the weights as ResoMap did (examples/evaluate_in_pytorch.py
// reads it): class names in label order, the normalisation and the
// validation transform, all as strings (safetensors metadata is strings).
func describeInputs(meta map[string]string, d *sweep.DataInfo, res int) {
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	meta["classes"], meta["mean"], meta["std"] = js(d.Classes), js(d.Mean), js(d.Std)
	meta["augment"], meta["val_transform"] = d.Augment, d.ValTransform
	meta["input_size"] = fmt.Sprint(res)
	if d.Augment == dataset.AugmentImageNet {
		meta["resize"] = fmt.Sprint(dataset.StoredSide(res))
	}
}

// run is the state of one Train call.
type run struct {
	t     *Trainer
	cfg   sweep.Config
	opts  RunOptions
	ds    *dataset.Set
	m     *torch.Model
	rec   checkpoint.Record // where training stands; handed out as checkpoints
	res   *Result
	meta  map[string]string // safetensors metadata
	until int               // epochs to reach
	micro int               // micro-batch size
	steps int               // steps per epoch
	lr    float64           // learning rate of the last step
	imgs  int64             // images trained in this call
	// inFlight is the mid-epoch checkpoint being stored in the background.
	inFlight *upload
	// shareOwn, shareWall: DeviceShare when the current epoch's part in
	// this call began.
	shareOwn, shareWall float64
	// hostCPU: the host's CPU time when the current epoch began in this
	// process (not sampled for an epoch resumed mid-way: no figure then);
	// gpus samples the GPUs over it likewise (nil: not sampled).
	hostCPU hoststat.CPU
	gpus    *gpustat.Sampler
}

// gpuSampleEvery is how often an epoch's GPU figures are sampled (MLflow's
// monitor: every 10 s; epochs of a few seconds are common here).
const gpuSampleEvery = 2 * time.Second

// newRun checks from against cfg and starts the record.
func (t *Trainer) newRun(cfg sweep.Config, from *checkpoint.Checkpoint) (*run, error) {
	r := &run{t: t, cfg: cfg, meta: map[string]string{"format": "pt", "model": cfg.Model, "resolution": fmt.Sprint(cfg.Resolution)}}
	r.rec = t.newRecord(cfg)
	if from == nil {
		return r, nil
	}
	if err := from.Verify(); err != nil {
		return nil, err
	}
	if from.Record.ConfigHash != r.rec.ConfigHash || from.Record.Model != cfg.Model || from.Record.Resolution != cfg.Resolution {
		return nil, fmt.Errorf("%w: checkpoint of %s@%d (config %.12s), training %s@%d (config %.12s)", checkpoint.ErrForeign,
			from.Record.Model, from.Record.Resolution, from.Record.ConfigHash, cfg.Model, cfg.Resolution, r.rec.ConfigHash)
	}
	if want, ok := cfg.TrainMicroBatch(); ok && from.Record.MicroBatch != 0 && from.Record.MicroBatch != want {
		// An earlier version's out-of-memory back-off went on under the
		// config's name with smaller micro-batches: its BatchNorm
		// statistics are another training's.
		return nil, fmt.Errorf("%w: checkpoint %s@%d epoch %d was trained with micro-batch %d, its config names %d (an out-of-memory back-off of an earlier version): set hyper.micro_batch: %d to go on as that training, or delete config %.12s's checkpoints to train it again",
			checkpoint.ErrForeign, cfg.Model, cfg.Resolution, from.Record.EpochsDone, from.Record.MicroBatch, want, from.Record.MicroBatch, r.rec.ConfigHash)
	}
	if p := from.Record.Precision; p != "" && p != r.rec.Precision {
		// Allowed (a GPU run may go on on a CPU worker), but the figures
		// of this combination then mix two numerics.
		t.Logger.Warn("resuming with another precision", "model", cfg.Model, "resolution", cfg.Resolution,
			"checkpoint", p, "now", r.rec.Precision)
	}
	return r, nil
}

// use sets the options of one Train call and starts its result.
func (r *run) use(opts RunOptions) {
	r.opts, r.res, r.imgs = opts, &Result{}, 0
	r.until, r.micro = opts.UntilEpoch, r.cfg.MicroBatchFor(opts.MicroBatch)
	if r.until <= 0 || r.until > r.cfg.Epochs {
		r.until = r.cfg.Epochs
	}
	if r.opts.OnCheckpoint == nil {
		r.opts.OnCheckpoint = func(context.Context, *checkpoint.Checkpoint) error { return nil }
	}
	if r.opts.OnPhase == nil {
		r.opts.OnPhase = func(string) {}
	}
}

// newRecord is the record of a fresh training of cfg on this trainer.
func (t *Trainer) newRecord(cfg sweep.Config) checkpoint.Record {
	cfgJSON, _ := json.Marshal(cfg)
	rec := checkpoint.Record{
		Format: checkpoint.Format, Model: cfg.Model, Family: sweep.FamilyOf(cfg.Model), Resolution: cfg.Resolution,
		Epochs: cfg.Epochs, ConfigHash: cfg.Hash(), Config: cfgJSON, Device: t.Device,
		Precision: "fp32", ChannelsLast: t.ChannelsLast,
		Seeds:    checkpoint.Seeds{Sweep: cfg.Seed, Init: initSeed(cfg)},
		Versions: checkpoint.Versions{ResoMap: Version, Torch: t.Lib.TorchVersion(), ABI: torch.ABIVersion, Go: runtime.Version()},
		Numerics: []string{t.Numerics().String()},
	}
	if t.MixedPrecision {
		rec.Precision = "bf16-autocast"
	}
	return rec
}

// resume loads from (if any) into the model and the record.
func (r *run) resume(ctx context.Context, from *checkpoint.Checkpoint) error {
	r.steps = dataset.StepsPerEpoch(r.ds.Train.N, r.cfg.BatchSize)
	r.rec.StepsPerEpoch = r.steps
	if from == nil {
		if r.cfg.Init != nil {
			return r.startFrom(ctx, r.cfg.Init)
		}
		return nil
	}
	if from.Record.StepsPerEpoch != r.steps {
		return fmt.Errorf("%w: checkpoint has %d steps per epoch, data gives %d", checkpoint.ErrForeign, from.Record.StepsPerEpoch, r.steps)
	}
	if err := restore(r.m, from.Model, from.Optim); err != nil {
		return err
	}
	f := from.Record
	r.rec.StepInEpoch, r.rec.SamplesSeen, r.rec.Partial = f.StepInEpoch, f.SamplesSeen, f.Partial
	r.rec.Progress = f.Progress
	r.rec.Metrics = append([]sweep.EpochMetrics(nil), f.Metrics...)
	// The steps before ran under the checkpoint's numerics, the next under
	// this trainer's.
	r.rec.Numerics = sweep.UnionNumerics(f.Numerics, r.rec.Numerics)
	return nil
}

// where names the step being trained, for error messages.
func (r *run) where() string {
	return fmt.Sprintf("%s@%d epoch %d step %d", r.cfg.Model, r.cfg.Resolution, r.rec.EpochsDone+1, r.rec.StepInEpoch+1)
}

// epoch trains the rest of the current epoch, validates and checkpoints it.
func (r *run) epoch(ctx context.Context) error {
	if r.opts.DeviceShare != nil {
		r.shareOwn, r.shareWall = r.opts.DeviceShare()
	}
	r.hostCPU = hoststat.CPU{} // a resumed epoch's part in this process is not the epoch
	if r.rec.StepInEpoch == 0 {
		r.hostCPU = hoststat.SampleCPU()
		if r.t.GPUStats != nil {
			r.gpus = r.t.GPUStats.Start(gpuSampleEvery)
			defer r.stopGPUs() // an epoch that fails keeps no sampler
		}
	}
	if err := r.fineTuneEpoch(); err != nil {
		return err
	}
	r.opts.OnPhase(PhaseTraining)
	feed := r.startFeed(ctx)
	defer feed.stop()
	lastCkpt := time.Now()
	for r.rec.StepInEpoch < r.steps {
		if ctx.Err() != nil {
			return r.interrupt(ctx, feed)
		}
		if err := r.step(ctx, feed); err != nil {
			return err
		}
		due := r.opts.CheckpointSteps > 0 && r.rec.StepInEpoch%r.opts.CheckpointSteps == 0 ||
			r.opts.CheckpointInterval > 0 && time.Since(lastCkpt) >= r.opts.CheckpointInterval
		if due && r.rec.StepInEpoch < r.steps {
			if err := r.emitMid(ctx); err != nil {
				return err
			}
			lastCkpt = time.Now()
		}
	}
	feed.stop()
	return r.finishEpoch(ctx)
}

// interrupt checkpoints the step reached and reports the interruption.
func (r *run) interrupt(ctx context.Context, feed *stagedFeed) error {
	feed.stop()
	if err := r.emitNow(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	return fmt.Errorf("%w at epoch %d step %d: %w", ErrInterrupted, r.rec.EpochsDone+1, r.rec.StepInEpoch, context.Cause(ctx))
}

// finishEpoch validates, records the epoch's figures and checkpoints it.
// The epoch's tensors are snapshot first and their files stored while
// validation runs (they do not change in it); the record, with the
// figures, is committed once they are in.
func (r *run) finishEpoch(ctx context.Context) error {
	store := context.WithoutCancel(ctx) // a paused epoch still commits
	files, err := r.snapshotEpoch(store)
	if err != nil {
		return err
	}
	r.opts.OnPhase(PhaseValidating)
	t0 := time.Now()
	vloss, vacc, err := r.evaluate()
	if err != nil {
		<-files.done
		return fmt.Errorf("%s@%d validate epoch %d: %w", r.cfg.Model, r.cfg.Resolution, r.rec.EpochsDone+1, err)
	}
	if math.IsNaN(vloss) || math.IsInf(vloss, 0) {
		<-files.done
		return fmt.Errorf("%w: %s@%d epoch %d: validation loss %v (a lower learning rate may help)", ErrDiverged,
			r.cfg.Model, r.cfg.Resolution, r.rec.EpochsDone+1, vloss)
	}
	r.res.EvalSeconds += time.Since(t0).Seconds()
	r.recordEpoch(vloss, vacc, time.Since(t0).Seconds())
	r.opts.OnPhase(PhaseSavingCheckpoint)
	err = r.commitEpoch(store, files)
	r.rec.IsBest, r.rec.IsFinal = false, false
	if err != nil {
		return err
	}
	r.t.Logger.Info("epoch done", "model", r.cfg.Model, "resolution", r.cfg.Resolution, "epoch", r.rec.EpochsDone,
		"train_loss", r.rec.Metrics[len(r.rec.Metrics)-1].TrainLoss, "val_loss", vloss, "val_acc", vacc)
	return nil
}

// ErrDiverged: training reached a loss that is not a number. Training the
// same config again gives the same (it is deterministic), so it is not
// retried; a record cannot hold it either (JSON has no NaN).
var ErrDiverged = errkind.New(errkind.Invalid, "training diverged")

// deviceFraction is the share of the device this training had over its
// epoch's part in this call (1 when the caller does not count it).
func (r *run) deviceFraction() float64 {
	if r.opts.DeviceShare == nil {
		return 1
	}
	own, wall := r.opts.DeviceShare()
	if d := wall - r.shareWall; d > 0 {
		return min(1, max(0, (own-r.shareOwn)/d))
	}
	return 1
}

// stopGPUs ends the epoch's GPU sampling, if any, and gives its figures.
func (r *run) stopGPUs() []*gpustat.Figures {
	if r.gpus == nil {
		return nil
	}
	figs := r.gpus.Stop()
	r.gpus = nil
	return figs
}

// recordEpoch puts the finished epoch's figures into the record.
func (r *run) recordEpoch(vloss, vacc, evalSeconds float64) {
	p := r.rec.Partial
	epoch := r.rec.EpochsDone + 1
	m := sweep.EpochMetrics{
		Epoch: epoch, TrainLoss: p.LossSum / float64(p.Seen), TrainAcc: float64(p.Correct) / float64(p.Seen),
		ValLoss: vloss, ValAcc: vacc, LR: r.lr, Seconds: p.Seconds + evalSeconds, ImagesPS: float64(p.Seen) / p.Seconds,
		DeviceSeconds: (p.Seconds + evalSeconds) * r.deviceFraction(),
		FinishedAt:    time.Now().UTC().Truncate(time.Millisecond),
	}
	if pct, ok := hoststat.Percent(r.hostCPU, hoststat.SampleCPU()); ok {
		m.HostCPUPercent = max(pct, 0.01) // a figure, never "not known"
	}
	if mb, pct, ok := hoststat.Memory(); ok {
		m.HostMemoryMB, m.HostMemoryPercent = mb, pct
	}
	for i, f := range r.stopGPUs() {
		if f != nil {
			m.GPUs = append(m.GPUs, sweep.GPUFigures{Index: i, MemoryMB: f.MemoryMB, MemoryPercent: f.MemoryPercent,
				UtilizationPercent: f.UtilizationPercent, PowerWatts: f.PowerWatts, PowerPercent: f.PowerPercent})
		}
	}
	r.rec.Metrics = append(r.rec.Metrics, m)
	r.rec.EpochsDone, r.rec.StepInEpoch, r.rec.Partial = epoch, 0, checkpoint.Partial{}
	r.rec.IsBest = r.rec.BestEpoch == 0 || vloss < r.rec.BestValLoss
	if r.rec.IsBest {
		r.rec.BestValLoss, r.rec.BestValAcc, r.rec.BestEpoch = vloss, vacc, epoch
	}
	r.rec.IsFinal = r.rec.EpochsDone == r.cfg.Epochs
}

// evaluate returns mean loss and accuracy over the validation split.
func (r *run) evaluate() (loss, acc float64, err error) {
	return evaluateSplit(r.m, r.ds.Val, r.micro)
}
