package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// TrainEpoch trains one epoch. A retried attempt reads the last heartbeat
// details and continues from that checkpoint's step, not from the start of
// the epoch; without them it continues from the newest good checkpoint.
// Cancellation and worker shutdown checkpoint first.
func (a *Activities) TrainEpoch(ctx context.Context, in workflows.TrainEpochInput) (workflows.TrainEpochOutput, error) {
	started := time.Now()
	repo := a.repo(in.Prefix)
	hb := newHeartbeater(ctx)
	defer hb.stop()
	ctx = hb.watching(ctx) // store calls tell it when they wait and advance
	store := &attemptStore{a: a, repo: repo, hb: hb}
	info := activity.GetInfo(ctx)
	out := workflows.TrainEpochOutput{Attempt: info.Attempt, Device: a.Trainer.Device, WorkerQueue: a.WorkerQueue}
	// A worker that cannot make the training's photos says so before it
	// waits for a slot (another worker can train it: retried).
	if err := a.Trainer.CheckDecoder(in.Config); err != nil {
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
	slotted := time.Now()
	out.WaitSeconds = max(0, waited-fetching)
	// Opening builds the data cache when it is cold, on every core:
	// trainings running meanwhile share the device with it.
	opening := a.device.start(a.cpuCores())
	s, from, err := a.openSession(ctx, in, hb, slot)
	opening.stop()
	if err != nil {
		return out, err
	}
	out.RestoreSeconds = time.Since(slotted).Seconds() + fetching // a download is the training's, not waiting
	if s == nil {
		// Already done (a previous attempt finished but its result was
		// lost): report it without training again.
		out.ResumedFrom = sweep.Resume{Epoch: from.Record.EpochsDone + 1, Step: from.Record.StepInEpoch, Attempt: int(info.Attempt)}
		return epochOutput(repo, from.Record, out, started), nil
	}
	at := s.Record()
	out.ResumedFrom = sweep.Resume{Epoch: at.EpochsDone + 1, Step: at.StepInEpoch, Attempt: int(info.Attempt)}
	out.Resident = from == nil && at.EpochsDone > 0
	if !out.Resident { // opened here: its data cache build (0 when warm) apart
		out.CacheBuildSeconds = s.DataBuildSeconds()
		out.RestoreSeconds -= out.CacheBuildSeconds
	}
	// Training stops at a step boundary (with a checkpoint) when the
	// activity is cancelled or the worker is shutting down.
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hb.stopOnStall(cancel)
	go func() {
		select {
		case <-activity.GetWorkerStopChannel(ctx):
			cancel(errWorkerStopping)
		case <-tctx.Done():
		}
	}()
	use := a.device.start(a.cpuCores())
	host := sampleHost()
	var res *trainer.Result
	if perr := runLogged(ctx, slot, func() {
		res, err = s.Train(tctx, trainer.RunOptions{
			UntilEpoch: in.Epoch, MicroBatch: in.MicroBatch, CheckpointSteps: in.CheckpointSteps,
			CheckpointInterval: time.Duration(in.CheckpointSeconds) * time.Second,
			OnProgress:         hb.progress, OnCheckpoint: store.checkpoint, StoreFiles: store.storeFiles, OnPhase: hb.setPhase,
			DeviceShare: use.peek,
		})
	}); perr != nil {
		res, err = nil, perr
	}
	own, wall, shared := use.stop()
	if a.cpuCores() > 0 {
		out.HostOthers = othersShare(host, sampleHost())
	}
	if err != nil {
		a.residents().drop(s)
		return workflows.TrainEpochOutput{}, interrupted(ctx, tctx, hb.lastKey(), err)
	}
	// The epoch's checkpoint is stored: the next epoch (this training's
	// or another's) needs only its record, not its bytes in the Go heap.
	last, size := res.Last.Record, res.Last.TensorBytes()
	res.Last = nil
	trainer.ReleaseMemory(size)
	if last.IsFinal {
		a.residents().drop(s) // nothing more to train: free it for the others
	} else {
		a.residents().put(in.Config.Hash(), hb.lastKey(), in.MicroBatch, s)
	}
	activity.GetLogger(ctx).Info("epoch stored", "combination", fmt.Sprintf("%s@%d", in.Config.Model, in.Config.Resolution), "seed", in.Config.Seed,
		"epoch", in.Epoch, "resident", out.Resident, "held_models", a.residents().Count(), "live_models", a.Trainer.Lib.LiveModels())
	out.TrainSeconds, out.EvalSeconds, out.CheckpointSeconds = res.TrainSeconds, res.EvalSeconds, res.CheckpointSeconds
	out.DeviceSeconds, out.SharedDevice = (res.TrainSeconds+res.EvalSeconds)*own/max(wall, 1e-9), shared
	return epochOutput(repo, last, out, started), nil
}

// takeSlotWaiting takes a training slot (see takeSlot) for an attempt that
// began running at started, and says how long it has waited since it was
// scheduled: queued for a worker, then for the slot.
func (a *Activities) takeSlotWaiting(ctx context.Context, phase func(string), started time.Time) (slot *Slot, waited float64, err error) {
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
// libtorch calls run on the slot's thread (slot.Run). An epoch sent to
// this worker's own queue does not wait: with every slot taken it fails as
// WorkerBusy, and the workflow sends it to the shared queue. Without Slots
// there is no bound: the nil slot runs calls in place.
func (a *Activities) takeSlot(ctx context.Context, phase func(string)) (*Slot, error) {
	if a.Slots == nil {
		return nil, nil
	}
	if slot, ok := a.Slots.TryTake(); ok {
		return slot, nil
	}
	if a.WorkerQueue != "" && activity.GetInfo(ctx).TaskQueue == a.WorkerQueue {
		return nil, temporal.NewNonRetryableApplicationError("this worker's training slots are all taken", workflows.ErrTypeWorkerBusy, nil)
	}
	phase(workflows.PhaseWaitingForSlot)
	return a.Slots.Take(ctx)
}

// openSession finds the training to continue: the session this worker holds
// at the newest stored checkpoint (a first attempt only: a retry starts
// from its heartbeat), or one opened from the newest good checkpoint. It
// returns a nil session and the checkpoint when that is already past
// in.Epoch. A session it opens is built on the slot's thread.
func (a *Activities) openSession(ctx context.Context, in workflows.TrainEpochInput, hb *heartbeater, slot *Slot) (*trainer.Session, *checkpoint.Checkpoint, error) {
	hb.setPhase(workflows.PhaseLoadingCheckpoint)
	if !activity.HasHeartbeatDetails(ctx) {
		newest, err := a.repo(in.Prefix).Newest(ctx, a.combo(in.Prepared))
		if err != nil {
			return nil, nil, err
		}
		if s := a.residents().take(in.Config.Hash(), newest, in.MicroBatch); s != nil {
			if s.Record().EpochsDone < in.Epoch {
				return s, nil, nil
			}
			a.residents().drop(s)
		}
	}
	hb.setPhase(workflows.PhaseCheckingData)
	if err := a.checkData(ctx, in.Config); err != nil {
		return nil, nil, err
	}
	hb.setPhase(workflows.PhaseLoadingCheckpoint)
	from, err := a.resumeFrom(ctx, in.Prepared)
	if err != nil {
		return nil, nil, err
	}
	if from != nil && from.Record.EpochsDone >= in.Epoch {
		return nil, from, nil
	}
	a.residents().reserve()
	var s *trainer.Session
	if perr := runLogged(ctx, slot, func() { s, err = a.Trainer.Open(ctx, in.Config, from, hb.setPhase) }); perr != nil {
		s, err = nil, perr
	}
	if err != nil {
		a.residents().drop(nil)
		return nil, nil, err
	}
	if from != nil {
		// Its tensors are in the model now: the epoch needs only its
		// record, not the bytes (1 GB for vgg11 with momentum).
		size := from.TensorBytes()
		from = &checkpoint.Checkpoint{Record: from.Record}
		trainer.ReleaseMemory(size)
	}
	return s, from, nil
}

// interrupted turns a training error into the activity's: a worker
// shutting down is retried elsewhere, a cancel reports the cancel.
func interrupted(ctx, tctx context.Context, lastKey string, err error) error {
	if !errors.Is(err, trainer.ErrInterrupted) {
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
	_, err := a.Trainer.Weights.Fetch(fctx, in.Config.Init.Weights)
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
