package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/workflows"
)

// TrainEpoch trains one epoch. A retried attempt reads the last heartbeat
// details and continues from that checkpoint's step, not from the start of
// the epoch; without them it continues from the newest good checkpoint.
// Cancellation and worker shutdown checkpoint first. It is the engine's
// adapter: heartbeats, the attempt's store, the input and the output.
func (a *Activities) TrainEpoch(ctx context.Context, in workflows.TrainEpochInput) (workflows.TrainEpochOutput, error) {
	started := time.Now()
	repo := a.repo(in.Prefix)
	hb := newHeartbeater(ctx)
	defer hb.stop()
	ctx = hb.watching(ctx) // store calls tell it when they wait and advance
	info := activity.GetInfo(ctx)
	out := workflows.TrainEpochOutput{Attempt: info.Attempt, Device: a.Engine.Device(), WorkerQueue: a.WorkerQueue}
	// A worker that cannot make the training's photos says so before it
	// waits for a slot (another worker can train it: retried).
	if err := a.Engine.Trainer.CheckDecoder(in.Config); err != nil {
		return out, classify(err) // data that is not there is bad input; another decoder, another worker's
	}
	fetching, err := a.fetchWeights(ctx, in, hb)
	if err != nil {
		return out, err
	}
	slot, waited, err := a.takeSlotWaiting(ctx, hb.setPhase, started)
	if err != nil {
		return out, err
	}
	defer slot.Release()
	out.WaitSeconds = max(0, waited-fetching)
	hb.setPhase(workflows.PhaseLoadingCheckpoint)
	var tctx context.Context // the training's, once the session is open
	run, err := a.Engine.TrainEpoch(ctx, slot, a.epoch(ctx, in, repo, hb, &tctx))
	switch {
	case err != nil && !run.Opened:
		return out, err
	case err != nil:
		return workflows.TrainEpochOutput{}, interrupted(ctx, tctx, hb.lastKey(), err)
	}
	run.At.Attempt = int(info.Attempt)
	out.ResumedFrom, out.Resident = run.At, run.Resident
	// A download is the training's, not waiting; the data cache build
	// (0 when warm, or resident) apart.
	out.RestoreSeconds = run.OpenSeconds + fetching - run.CacheBuildSeconds
	out.CacheBuildSeconds = run.CacheBuildSeconds
	if run.AlreadyDone {
		// A previous attempt finished it but its result was lost: report
		// it without training again.
		return epochOutput(repo, run.Record, out, started), nil
	}
	activity.GetLogger(ctx).Info("epoch stored", "combination", fmt.Sprintf("%s@%d", in.Config.Model, in.Config.Resolution), "seed", in.Config.Seed,
		"epoch", in.Epoch, "resident", out.Resident, "held_models", a.Engine.HeldModels(), "live_models", a.Engine.Trainer.Lib.LiveModels())
	out.TrainSeconds, out.EvalSeconds, out.CheckpointSeconds = run.TrainSeconds, run.EvalSeconds, run.CheckpointSeconds
	out.DeviceSeconds, out.SharedDevice, out.HostOthers = run.DeviceSeconds, run.SharedDevice, run.HostOthers
	return epochOutput(repo, run.Record, out, started), nil
}

// epoch is what the engine needs of in's epoch: this attempt's store as
// its hooks, the heartbeater as its ears, and the training's context
// (kept in *tctx), ended (at a step boundary, with a checkpoint) when the
// activity is cancelled, stalls, or the worker shuts down.
func (a *Activities) epoch(ctx context.Context, in workflows.TrainEpochInput, repo checkpoint.Repo, hb *heartbeater, tctx *context.Context) engine.Epoch {
	store := &attemptStore{a: a, repo: repo, hb: hb}
	return engine.Epoch{
		Config: in.Config, Epoch: in.Epoch, MicroBatch: in.MicroBatch,
		FromResident: !activity.HasHeartbeatDetails(ctx),
		Newest:       func(ctx context.Context) (string, error) { return repo.Newest(ctx, a.combo(in.Prepared)) },
		CheckData: func(ctx context.Context) error {
			hb.setPhase(workflows.PhaseCheckingData)
			return a.checkData(ctx, in.Config)
		},
		ResumeFrom: func(ctx context.Context) (*checkpoint.Checkpoint, error) {
			hb.setPhase(workflows.PhaseLoadingCheckpoint)
			return a.resumeFrom(ctx, in.Prepared)
		},
		Hooks: engine.RunOptions{CheckpointSteps: in.CheckpointSteps, CheckpointInterval: time.Duration(in.CheckpointSeconds) * time.Second,
			OnProgress: hb.progress, OnCheckpoint: store.checkpoint, StoreFiles: store.storeFiles, OnPhase: hb.setPhase},
		Interruptible: func() (context.Context, func()) {
			var release func()
			*tctx, release = interruptible(ctx, hb)
			return *tctx, release
		},
		StoredKey: hb.lastKey,
		Log:       activity.GetLogger(ctx),
	}
}

// interruptible is the context an epoch trains under: ended with a cause
// when the activity is cancelled, the heartbeater finds it stalled, or the
// worker stops (training then stops at a step boundary, with a checkpoint).
func interruptible(ctx context.Context, hb *heartbeater) (context.Context, func()) {
	tctx, cancel := context.WithCancelCause(ctx)
	hb.stopOnStall(cancel)
	go func() {
		select {
		case <-activity.GetWorkerStopChannel(ctx):
			cancel(errWorkerStopping)
		case <-tctx.Done():
		}
	}()
	return tctx, func() { cancel(nil) }
}

// takeSlotWaiting takes a training slot (see takeSlot) for an attempt that
// began running at started, and says how long it has waited since it was
// scheduled: queued for a worker, then for the slot.
func (a *Activities) takeSlotWaiting(ctx context.Context, phase func(string), started time.Time) (slot *engine.Slot, waited float64, err error) {
	if slot, err = a.takeSlot(ctx, phase); err != nil {
		return nil, 0, err
	}
	var before workflows.Heartbeat
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &before)
	}
	return slot, queued(activity.GetInfo(ctx), before, started) + time.Since(started).Seconds(), nil
}

// queued is how long an attempt that began running at started waited
// before it: a first attempt, from being scheduled until a worker took it;
// a retry, since its predecessor's last heartbeat (before.At), as the
// time between is a lost worker's or a stopped stack's downtime and the
// retry's backoff, none of it the training's own cost. A retry whose
// predecessor never heartbeated (it failed first) waited 0.
func queued(info activity.Info, before workflows.Heartbeat, started time.Time) float64 {
	if info.Attempt > 1 {
		if before.At.IsZero() || started.Before(before.At) {
			return 0
		}
		return started.Sub(before.At).Seconds()
	}
	if info.ScheduledTime.IsZero() || info.StartedTime.Before(info.ScheduledTime) {
		return 0
	}
	return info.StartedTime.Sub(info.ScheduledTime).Seconds()
}

// takeSlot waits for a training slot (reporting the wait to phase); its
// libtorch calls run on the slot's thread. An epoch sent to this worker's
// own queue does not wait: with every slot taken it fails as WorkerBusy,
// and the workflow sends it to the shared queue.
func (a *Activities) takeSlot(ctx context.Context, phase func(string)) (*engine.Slot, error) {
	own := a.WorkerQueue != "" && activity.GetInfo(ctx).TaskQueue == a.WorkerQueue
	slot, err := a.Engine.TakeSlot(ctx, own, func() { phase(workflows.PhaseWaitingForSlot) })
	if errors.Is(err, engine.ErrSlotsTaken) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeWorkerBusy, nil)
	}
	return slot, err
}

// interrupted turns a training error into the activity's: a worker
// shutting down is retried elsewhere, a cancel reports the cancel.
func interrupted(ctx, tctx context.Context, lastKey string, err error) error {
	if !errors.Is(err, engine.ErrInterrupted) {
		return classify(err)
	}
	if errors.Is(context.Cause(tctx), errWorkerStopping) {
		// Retryable: another worker continues from the heartbeat.
		return fmt.Errorf("worker stopping, checkpoint %s saved: %w", lastKey, err)
	}
	if cause := context.Cause(tctx); errors.Is(cause, errStalled) {
		return cause // retryable; the server has most likely retried it already
	}
	return ctx.Err()
}

var errWorkerStopping = errors.New("worker stopping")

func epochOutput(repo checkpoint.Repo, r checkpoint.Record, out workflows.TrainEpochOutput, started time.Time) workflows.TrainEpochOutput {
	// best and final refer to committed epoch checkpoints; RecordResult
	// exports their copies once the combination is done.
	out.Key = repo.Ref(r, checkpoint.EpochName(r.EpochsDone)).Key()
	if r.BestEpoch > 0 {
		out.BestKey = repo.Ref(r, checkpoint.EpochName(r.BestEpoch)).Key()
	}
	if r.EpochsDone == r.Epochs {
		out.FinalKey = out.Key
	}
	// Only this epoch's figures: the store holds the others, and the
	// workflow's history stays the same size per epoch.
	out.Progress = r.Progress
	out.Numerics = r.Numerics
	if n := len(r.Metrics); n > 0 {
		out.Progress.Metrics = r.Metrics[n-1:]
	}
	out.WallSeconds = time.Since(started).Seconds()
	return out
}

// fetchWeights downloads a fine-tuning's pretrained weights into this
// worker's cache before the attempt takes a slot (a download holds no
// core), when the attempt may start the training afresh: epoch 1, first
// attempt (a retry resumes from its heartbeat). The stall detector gives
// a download that moves no byte up, and a pause or cancel stops it; any
// other failure is left to the training's own fetch, which decides only
// if it starts afresh (a training resumed from a checkpoint needs no
// weights, wherever they went). It says how long it took.
func (a *Activities) fetchWeights(ctx context.Context, in workflows.TrainEpochInput, hb *heartbeater) (float64, error) {
	if in.Config.Init == nil || in.Epoch != 1 || activity.HasHeartbeatDetails(ctx) {
		return 0, nil
	}
	t0 := time.Now()
	hb.setPhase(workflows.PhaseFetchingWeights)
	fctx, done := hb.cancelOnStall(ctx)
	_, err := a.Engine.Trainer.Weights.Fetch(fctx, in.Config.Init.Weights)
	err = done(err)
	took := time.Since(t0).Seconds()
	switch {
	case err == nil:
	case errors.Is(err, errStalled):
		return took, err // retried
	case ctx.Err() != nil:
		return took, ctx.Err()
	default:
		activity.GetLogger(ctx).Warn("fetching the weights ahead failed; the training fetches them if it starts afresh", "err", err)
	}
	return took, nil
}
