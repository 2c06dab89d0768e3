package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/internal/redact"
	"github.com/resomap/resomap/sweep"
)

// Combination trains one (model, resolution) pair: skip it if its config
// already completed, resume it from its newest good checkpoint, then one
// TrainEpoch activity per epoch, with early stopping, OOM back-off and
// pause/resume/cancel.
func Combination(ctx workflow.Context, in CombinationInput) (sweep.Outcome, error) {
	c := newCombination(in)
	if err := c.setup(ctx); err != nil {
		return c.out, err
	}
	return c.run(ctx, in.Carry)
}

// combination is the state of one Combination workflow.
type combination struct {
	spec    sweep.Spec
	cfg     sweep.Config
	out     sweep.Outcome
	ctl     *control
	prep    Prepared
	started time.Time
	// epochsThisRun counts the epochs trained since this run started.
	epochsThisRun int
	// stopActivity cancels the running TrainEpoch, which checkpoints first.
	stopActivity workflow.CancelFunc
	// stopAsked: a pause or cancel asked the running TrainEpoch to stop.
	stopAsked bool
	// workerQueue is the queue of the worker that ran the last epoch.
	workerQueue string
	// combo is the training this workflow runs (its seed included).
	combo sweep.Combination
	// movedOn: the epoch running now was sent on to any worker because the
	// worker of the epoch before was gone or busy.
	movedOn bool
	// trk keeps the training's MLflow run up to date (nil: not tracked).
	trk *tracker
}

func newCombination(in CombinationInput) *combination {
	spec := in.Spec // completed when decoded (sweep.Spec.UnmarshalJSON)
	cfg := spec.Config(in.Combination)
	c := &combination{spec: spec, cfg: cfg, combo: in.Combination}
	c.out = sweep.Outcome{
		Identity: sweep.Identity{Model: cfg.Model, Family: sweep.FamilyOf(cfg.Model), Resolution: cfg.Resolution, Seed: in.Combination.Seed},
		Epochs:   cfg.Epochs, Status: sweep.Pending,
		Course: sweep.Course{MicroBatch: cfg.MicroBatchFor(spec.Hyper.MicroBatch)},
	}
	c.ctl = &control{what: c.out.ID(), paused: in.Paused, finished: func() bool { return c.out.Status.Done() },
		changed: c.controlled, answer: func() any { return string(c.out.Status) }}
	if k := in.Carry; k != nil {
		c.out, c.prep = k.Outcome, k.Prepared
	}
	return c
}

// setup answers queries and control, and labels the workflow for the Web UI.
func (c *combination) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (sweep.Outcome, error) { return c.out, nil }); err != nil {
		return err
	}
	if err := c.ctl.listen(ctx); err != nil {
		return err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrSweep.ValueSet(c.spec.Name), AttrModel.ValueSet(c.cfg.Model),
		AttrResolution.ValueSet(int64(c.cfg.Resolution)), AttrStatus.ValueSet(string(c.out.Status)))
	c.started = workflow.Now(ctx)
	return nil
}

// continueAsNew hands the combination to a fresh run between epochs, with
// the control signals already received applied: its history stays bounded
// however many epochs it trains.
func (c *combination) continueAsNew(ctx workflow.Context) error {
	return workflow.NewContinueAsNewError(ctx, Combination, CombinationInput{
		Spec: c.spec, Combination: c.combo, Paused: c.ctl.paused,
		Carry: &CombinationCarry{Outcome: c.out, Prepared: c.prep, Started: c.started},
	})
}

// runIsLong says whether this run's history is long enough to continue as new.
func (c *combination) runIsLong(ctx workflow.Context) bool {
	long := c.epochsThisRun >= EpochsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	return long && c.out.EpochsDone < c.cfg.Epochs &&
		since(ctx, changeCombinationContinuesAsNew)
}

// controlled applies a pause, resume or cancel that took effect.
func (c *combination) controlled(ctx workflow.Context, cmd string) {
	switch cmd {
	case SignalPause:
		c.setStatus(ctx, sweep.Paused)
	case SignalResume:
		c.setStatus(ctx, sweep.Running)
		return
	}
	if c.stopActivity != nil {
		c.stopAsked = true
		c.stopActivity()
	}
}

func (c *combination) setStatus(ctx workflow.Context, s sweep.Status) {
	c.out.Status = s
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(string(s)))
}

// ending is how a combination ends: its final status and why.
type ending struct {
	status sweep.Status
	reason string
}

func (c *combination) run(ctx workflow.Context, carry *CombinationCarry) (sweep.Outcome, error) {
	if carry != nil {
		c.started = carry.Started
	}
	c.trk = startTracker(ctx, c)
	if carry == nil {
		if end := c.prepare(ctx); end != nil {
			return c.finish(ctx, *end)
		}
	}
	c.trk.want() // the run exists (RUNNING) before the first epoch ends
	if c.ctl.paused {
		c.setStatus(ctx, sweep.Paused)
	} else {
		c.setStatus(ctx, sweep.Running)
	}
	for c.out.EpochsDone < c.cfg.Epochs {
		if c.patienceSpent() && since(ctx, changePatienceAtResume) {
			// Found so at resume: it stopped early before it was recorded.
			c.stopEarly()
			break
		}
		if end := c.nextEpoch(ctx); end != nil {
			return c.finish(ctx, *end)
		}
		if c.patienceSpent() {
			c.stopEarly()
			break
		}
		if c.runIsLong(ctx) {
			c.ctl.drain(ctx)
			if !c.ctl.cancelled { // a cancel ends the combination next round
				return c.out, c.continueAsNew(ctx)
			}
		}
	}
	c.evaluateAtTestResolutions(ctx)
	return c.finish(ctx, ending{status: sweep.Completed})
}

// patienceSpent: the training has gone patience epochs without a better
// validation loss before its last epoch, so it stops early.
func (c *combination) patienceSpent() bool {
	return c.cfg.Patience > 0 && c.out.EpochsDone > 0 && c.out.EpochsDone-c.out.BestEpoch >= c.cfg.Patience &&
		c.out.EpochsDone < c.cfg.Epochs
}

func (c *combination) stopEarly() {
	c.out.EarlyStopped = true
	c.out.Keys.Final = c.out.Keys.Latest
}

// evaluateAtTestResolutions evaluates the best checkpoint at the sweep's
// test resolutions. It cannot fail the combination: the training is done;
// an evaluation that fails leaves the map without this row, and says so.
func (c *combination) evaluateAtTestResolutions(ctx workflow.Context) {
	if c.out.Keys.Best == "" || !since(ctx, changeTestResolutions) {
		return
	}
	actx := workflow.WithActivityOptions(ctx, evaluateOptions(c.spec, c.out.ID()+" at test resolutions"))
	var out EvaluateOutput
	err := workflow.ExecuteActivity(actx, ActivityEvaluateAt, EvaluateInput{Prepared: c.prep, BestKey: c.out.Keys.Best,
		Resolutions: c.spec.EffectiveTestResolutions(), MicroBatch: c.out.MicroBatch, AllowUpsampling: c.spec.AllowUpsampling}).Get(ctx, &out)
	if err != nil {
		workflow.GetLogger(ctx).Warn("evaluation at test resolutions failed", "combination", c.out.ID(), "err", err)
		c.out.TestError = errorMessage(err)
		return
	}
	c.out.TestResults, c.out.TestSeconds = out.Results, out.Seconds
	c.out.WaitSeconds += out.WaitSeconds
}

// prepare fixes the config, skips a config that already completed, waits
// while another sweep trains the same config, and finds where a partly
// trained one stands.
func (c *combination) prepare(ctx workflow.Context) *ending {
	sctx := workflow.WithActivityOptions(ctx, shortOptions())
	if !since(ctx, changePrepareHeartbeats) {
		in := PrepareInput{Spec: c.spec, Combination: c.combo}
		t0 := workflow.Now(ctx)
		if err := workflow.ExecuteActivity(sctx, ActivityPrepare, in).Get(ctx, &c.prep); err != nil {
			return &ending{sweep.Failed, "prepare: " + errorMessage(err)}
		}
		c.out.PrepareSeconds += workflow.Now(ctx).Sub(t0).Seconds()
	} else if end := c.runPrepare(ctx); end != nil {
		return end
	}
	c.out.ConfigHash, c.out.NativeSide = c.prep.ConfigHash, c.prep.NativeSide
	if i := c.prep.Config.Init; i != nil {
		weights := i.Weights
		if since(ctx, changePrepareHeartbeats) {
			weights = redact.URL(weights)
		}
		c.out.StartedFrom = fmt.Sprintf("%s (sha256 %.12s)", weights, i.SHA256)
	}
	if end := c.skipIfDone(ctx); end != nil {
		return end
	}
	if end := c.skipIfTracked(ctx); end != nil {
		return end
	}
	if since(ctx, changeClaimTraining) {
		if end := c.claim(ctx); end != nil {
			return end
		}
	}
	var rp ResumePoint
	if err := workflow.ExecuteActivity(sctx, ActivityFindResumePoint, c.prep).Get(ctx, &rp); err != nil {
		return &ending{sweep.Failed, "find resume point: " + errorMessage(err)}
	}
	c.out.Progress, c.out.Step, c.out.Keys.Latest = rp.Progress, rp.Step, rp.Key
	c.out.Keys.Best = rp.BestKey
	if rp.EpochsDone == c.cfg.Epochs && rp.Step == 0 {
		// Trained to the end, never recorded (the store was down for
		// RecordResult, or the workflow ended while evaluating): it is
		// evaluated, exported and recorded from these.
		c.out.Keys.Final = rp.Key
	}
	if rp.EpochsDone > 0 && since(ctx, changeCarryCosts) {
		c.out.CarryEpochCosts(rp.Metrics)
		c.out.AddNumerics(rp.Numerics) // a training healed from its stored epochs trains none here
	}
	c.out.Summarise()
	if rp.Key != "" {
		c.out.Resumes = append(c.out.Resumes, sweep.Resume{Epoch: rp.EpochsDone + 1, Step: rp.Step, Reason: "found checkpoint"})
	}
	return nil
}

// skipIfDone ends a combination whose config already completed (in this
// or another sweep), adopting its result.
func (c *combination) skipIfDone(ctx workflow.Context) *ending {
	var found LookupOutput
	sctx := workflow.WithActivityOptions(ctx, shortOptions())
	if err := workflow.ExecuteActivity(sctx, ActivityLookupResult, c.prep.ConfigHash).Get(ctx, &found); err != nil {
		return &ending{sweep.Failed, "lookup result: " + errorMessage(err)}
	}
	if !found.Found {
		return nil
	}
	prev := found.Outcome
	if prev.Status == sweep.Completed && !prev.Exported() && since(ctx, changeHealResults) {
		// Recorded without its best or final model (by an earlier
		// version): trained on from its checkpoints and recorded again,
		// never adopted as it is (RecordResult replaces it).
		workflow.GetLogger(ctx).Warn("result recorded without its best or final model: healing it", "combination", c.out.ID(), "result", found.Key)
		return nil
	}
	c.out.Progress, c.out.Keys = prev.Progress, prev.Keys
	c.out.Device, c.out.TrainSeconds, c.out.EarlyStopped = prev.Device, prev.TrainSeconds, prev.EarlyStopped
	c.out.SkippedFrom = found.Sweep
	c.out.TestResults = prev.TestResults
	c.out.Summarise()
	if prev.Keys.Best != "" && lacksTestSizes(prev.TestResults, c.spec.EffectiveTestResolutions()) && since(ctx, changeAdoptedTestSizes) {
		c.evaluateAtTestResolutions(ctx) // the sizes stored are reused, the others evaluated
	}
	reason := "already completed by sweep " + found.Sweep
	if found.Key != "" {
		reason += " (" + found.Key + ")"
	}
	return &ending{sweep.Skipped, reason}
}

// lacksTestSizes says whether results miss one of sizes.
func lacksTestSizes(results []sweep.TestResult, sizes []int) bool {
	for _, r := range sizes {
		if !slices.ContainsFunc(results, func(t sweep.TestResult) bool { return t.Resolution == r }) {
			return true
		}
	}
	return false
}

// claim waits until this combination may train its config: while another
// sweep's combination trains it, this one waits (polling with back-off up
// to claimPollMax) and adopts its result when it completes.
func (c *combination) claim(ctx workflow.Context) *ending {
	sctx := workflow.WithActivityOptions(ctx, shortOptions())
	in := ClaimInput{ConfigHash: c.prep.ConfigHash, Owner: workflow.GetInfo(ctx).WorkflowExecution.ID}
	wait := claimPollMin
	for {
		var out ClaimOutput
		if err := workflow.ExecuteActivity(sctx, ActivityClaimTraining, in).Get(ctx, &out); err != nil {
			return &ending{sweep.Failed, "claim: " + errorMessage(err)}
		}
		if out.Granted {
			c.out.Reason = ""
			return nil
		}
		c.out.Reason = "waiting for " + out.Holder + ", which trains the same config"
		cancelled, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return c.ctl.cancelled })
		if err != nil || cancelled {
			return &ending{sweep.Cancelled, "cancelled while waiting for " + out.Holder}
		}
		if end := c.skipIfDone(ctx); end != nil {
			return end
		}
		wait = min(2*wait, claimPollMax)
	}
}

// nextEpoch waits while paused, then trains the next epoch; it says how
// the combination ends, or nil to go on.
func (c *combination) nextEpoch(ctx workflow.Context) *ending {
	t0 := workflow.Now(ctx)
	if err := workflow.Await(ctx, func() bool { return !c.ctl.paused || c.ctl.cancelled }); err != nil {
		return &ending{sweep.Cancelled, "workflow cancelled"}
	}
	c.out.WaitSeconds += workflow.Now(ctx).Sub(t0).Seconds() // paused
	if c.ctl.cancelled {
		return &ending{sweep.Cancelled, "cancelled by signal"}
	}
	epoch := c.out.EpochsDone + 1
	res, err := c.trainEpoch(ctx, epoch)
	if err != nil {
		return c.epochFailed(ctx, epoch, err)
	}
	c.apply(res)
	c.trk.want()
	c.epochsThisRun++
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrEpoch.ValueSet(int64(c.out.EpochsDone)), AttrBestValAcc.ValueSet(c.out.BestValAcc))
	c.notifyParent(ctx)
	return nil
}

// runPrepare runs Prepare, which a pause or cancel stops: while paused
// (a combination may start so) it waits for the resume (or a cancel) and
// prepares then, again if a pause stopped it. The time paused is
// waiting, the rest preparing.
func (c *combination) runPrepare(ctx workflow.Context) *ending {
	in := PrepareInput{Spec: c.spec, Combination: c.combo}
	for {
		if c.stopRequested() {
			if c.ctl.paused {
				c.setStatus(ctx, sweep.Paused)
			}
			t1 := workflow.Now(ctx)
			if err := workflow.Await(ctx, func() bool { return !c.ctl.paused || c.ctl.cancelled }); err != nil {
				return &ending{sweep.Cancelled, "workflow cancelled"}
			}
			c.out.WaitSeconds += workflow.Now(ctx).Sub(t1).Seconds()
			if c.ctl.cancelled {
				return &ending{sweep.Cancelled, "cancelled by signal"}
			}
		}
		t0 := workflow.Now(ctx)
		actx, stop := workflow.WithCancel(ctx)
		c.stopActivity, c.stopAsked = stop, false
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, prepareOptions(c.spec)), ActivityPrepare, in).Get(ctx, &c.prep)
		c.stopActivity = nil
		stop()
		c.out.PrepareSeconds += workflow.Now(ctx).Sub(t0).Seconds()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return &ending{sweep.Cancelled, "workflow cancelled"}
		case !c.stopAsked && !c.stopRequested():
			return &ending{sweep.Failed, "prepare: " + errorMessage(err)}
		}
		// Stopped by a pause or cancel (or failed meanwhile: prepared
		// again after the resume, as the pause holds); the stopped attempt
		// has reported back (WaitForCancellation), so a resume that came
		// meanwhile prepares again at once, never beside it.
	}
}

// trainEpoch runs one TrainEpoch activity, which a pause or cancel stops:
// on the worker that ran the epoch before, if it takes it within
// StickySeconds, else on any worker.
func (c *combination) trainEpoch(ctx workflow.Context, epoch int) (TrainEpochOutput, error) {
	if c.workerQueue != "" && since(ctx, changeStickyEpochs) {
		t0 := workflow.Now(ctx)
		res, err := c.runEpoch(ctx, epoch, c.workerQueue)
		if !retryElsewhere(err) {
			c.workerQueue = res.WorkerQueue
			return res, err
		}
		if c.stopRequested() && since(ctx, changeControlMeetsTimeout) {
			// Paused or cancelled meanwhile: no other worker takes it.
			return res, err
		}
		c.movedOn = true
		if since(ctx, changeDowntimeIsWaiting) {
			c.out.WaitSeconds += lostSince(ctx, err)
		}
		if neverStarted(err) && since(ctx, changeStickyWaitIsWaiting) {
			c.out.WaitSeconds += workflow.Now(ctx).Sub(t0).Seconds()
		}
		workflow.GetLogger(ctx).Info("worker of the last epoch gone or busy: any worker takes the epoch",
			"combination", c.out.ID(), "queue", c.workerQueue, "err", err)
	}
	res, err := c.runEpoch(ctx, epoch, "")
	c.workerQueue = res.WorkerQueue
	return res, err
}

// neverStarted says whether an epoch attempt on its worker's queue ended
// before it trained: that worker did not take it in time, or had no slot.
func neverStarted(err error) bool {
	var timeout *temporal.TimeoutError
	var appErr *temporal.ApplicationError
	return errors.As(err, &timeout) && timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START ||
		errors.As(err, &appErr) && appErr.Type() == ErrTypeWorkerBusy
}

// lostSince is how long ago the attempt that failed with err last showed
// life (its last heartbeat), when its worker was lost (a heartbeat
// timeout): that time is the worker's downtime, waiting, not the
// training's fixed cost. 0 otherwise.
func lostSince(ctx workflow.Context, err error) float64 {
	var te *temporal.TimeoutError
	var hb Heartbeat
	if !errors.As(err, &te) || !te.HasLastHeartbeatDetails() || te.LastHeartbeatDetails(&hb) != nil || hb.At.IsZero() {
		return 0
	}
	return max(0, workflow.Now(ctx).Sub(hb.At).Seconds())
}

// runEpoch runs TrainEpoch on queue ("": the workflow's own).
func (c *combination) runEpoch(ctx workflow.Context, epoch int, queue string) (TrainEpochOutput, error) {
	actx, stop := workflow.WithCancel(ctx)
	c.stopActivity, c.stopAsked = stop, false
	defer func() { c.stopActivity = nil; stop() }()
	opts := epochOptions(c.spec, epochSummary(c.out.ID(), epoch, c.cfg.Epochs), queue)
	var res TrainEpochOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, opts), ActivityTrainEpoch, TrainEpochInput{
		Prepared: c.prep, Epoch: epoch, MicroBatch: c.out.MicroBatch,
		CheckpointSteps: c.spec.Checkpoint.EverySteps, CheckpointSeconds: c.spec.Checkpoint.EverySeconds,
	}).Get(ctx, &res)
	return res, err
}

// retryElsewhere: an epoch sent to its last worker's queue failed there in
// a way another worker may mend (the worker is gone, frozen or busy, or the
// attempt failed for a passing reason), so any worker takes it next. A
// cancel, bad input or an out-of-memory error is the workflow's to handle.
func retryElsewhere(err error) bool {
	var canceled *temporal.CanceledError
	var appErr *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	switch {
	case err == nil, errors.As(err, &canceled):
		return false
	case errors.As(err, &appErr):
		return appErr.Type() == ErrTypeWorkerBusy ||
			!appErr.NonRetryable() && appErr.Type() != ErrTypeInvalidInput && appErr.Type() != ErrTypeOutOfMemory
	}
	return errors.As(err, &timeout)
}

// epochFailed decides what a failed epoch means: a pause or an OOM goes
// on (nil), a cancel or any other error ends the combination.
func (c *combination) epochFailed(ctx workflow.Context, epoch int, err error) *ending {
	var canceled *temporal.CanceledError
	var appErr *temporal.ApplicationError
	switch {
	case ctx.Err() != nil:
		return &ending{sweep.Cancelled, "workflow cancelled"}
	case errors.As(err, &canceled) && c.ctl.cancelled:
		return &ending{sweep.Cancelled, "cancelled by signal"}
	case errors.As(err, &canceled) && c.ctl.paused:
		return nil // the activity checkpointed; wait for resume
	case errors.As(err, &canceled) && since(ctx, changeResumeBeforeStopped):
		// A pause stopped the epoch and a resume came before it reported
		// back: it checkpointed, so train it again.
		return nil
	case (c.stopRequested() || c.stopAsked) && retryElsewhere(err) && since(ctx, changeControlMeetsTimeout):
		// Asked to stop, the attempt ended otherwise than by the cancel
		// (its worker died or stalled, so it timed out, and the server
		// retries no attempt once its cancel was asked for): the pause or
		// cancel holds, and after a resume (even one that came before the
		// attempt reported back) the epoch trains on from its last
		// checkpoint.
		if c.ctl.cancelled {
			return &ending{sweep.Cancelled, "cancelled by signal"}
		}
		return nil
	case errors.As(err, &appErr) && appErr.Type() == ErrTypeOutOfMemory && sweep.MicroBatchChangesResult(c.cfg.Model) &&
		since(ctx, changeOOMKeepsIdentity):
		// With BatchNorm a smaller micro-batch is another training: it is
		// never continued under this one's name.
		c.out.OOMs++
		return &ending{sweep.Failed, fmt.Sprintf("epoch %d: out of memory with micro-batches of %d: with BatchNorm or stochastic depth the micro-batch changes the result, "+
			"so it is not halved under this training's name; set hyper.micro_batch: %d (a training of its own) or a smaller batch_size",
			epoch, c.out.MicroBatch, max(1, c.out.MicroBatch/2))}
	case errors.As(err, &appErr) && appErr.Type() == ErrTypeOutOfMemory && c.out.MicroBatch > 1:
		// Same effective batch, half the memory: without BatchNorm the
		// result stays the same.
		c.out.OOMs++
		c.out.MicroBatch = (c.out.MicroBatch + 1) / 2
		c.out.Resumes = append(c.out.Resumes, sweep.Resume{Epoch: epoch, Reason: fmt.Sprintf("out of memory: micro-batch now %d", c.out.MicroBatch)})
		workflow.GetLogger(ctx).Warn("out of memory, halving micro-batch", "combination", c.out.ID(), "micro_batch", c.out.MicroBatch)
		return nil
	}
	return &ending{sweep.Failed, fmt.Sprintf("epoch %d: %s", epoch, errorMessage(err))}
}

// stopRequested: a pause or cancel holds, so no epoch should run.
func (c *combination) stopRequested() bool { return c.ctl.paused || c.ctl.cancelled }

// apply takes in one finished epoch.
func (c *combination) apply(res TrainEpochOutput) {
	switch {
	case res.Attempt > 1:
		c.out.Resumes = append(c.out.Resumes, sweep.Resume{Epoch: res.ResumedFrom.Epoch, Step: res.ResumedFrom.Step,
			Attempt: int(res.Attempt), Reason: "activity retried from its heartbeat checkpoint"})
	case c.movedOn && res.ResumedFrom.Step > 0:
		c.out.Resumes = append(c.out.Resumes, sweep.Resume{Epoch: res.ResumedFrom.Epoch, Step: res.ResumedFrom.Step,
			Attempt: int(res.Attempt), Reason: "its worker was lost: resumed on another worker from the last checkpoint"})
	}
	c.movedOn = false
	for _, m := range res.Progress.Metrics { // this epoch's
		c.out.AddEpochThroughput(m)
	}
	c.out.Progress, c.out.Step = res.Progress, 0
	c.out.Summarise()
	c.out.Keys.Latest, c.out.Keys.Best = res.Key, res.BestKey
	if res.FinalKey != "" {
		c.out.Keys.Final = res.FinalKey
	}
	c.out.TrainSeconds += res.TrainSeconds
	c.out.EvalSeconds += res.EvalSeconds
	c.out.CkptSeconds += res.CheckpointSeconds
	c.out.EpochSeconds += res.WallSeconds
	c.out.RestoreSeconds += res.RestoreSeconds
	c.out.CacheBuildSeconds += res.CacheBuildSeconds
	c.out.WaitSeconds += res.WaitSeconds
	c.out.DeviceSeconds += res.DeviceSeconds
	if res.SharedDevice {
		c.out.SharedEpochs++
	}
	c.out.AddHostOthers(res.HostOthers)
	c.out.EpochRuns++
	if res.Resident {
		c.out.ResidentEpochs++
	}
	c.out.Device = res.Device
	c.out.AddNumerics(res.Numerics)
}

// finish records the outcome (even when the workflow was cancelled) and
// tells the sweep.
func (c *combination) finish(ctx workflow.Context, end ending) (sweep.Outcome, error) {
	c.out.Reason = end.reason
	c.setStatus(ctx, end.status)
	c.out.FinishedAt = workflow.Now(ctx)
	c.out.WallSeconds = workflow.Now(ctx).Sub(c.started).Seconds() + c.out.CarriedSeconds
	c.out.OtherSeconds = max(0, c.out.WallSeconds-c.out.TrainSeconds)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithActivityOptions(dctx, shortOptions())
	var rec RecordOutput
	in := RecordInput{Sweep: c.spec.Name, Outcome: c.out}
	if since(ctx, changeClaimTraining) {
		in.Owner = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	err := workflow.ExecuteActivity(dctx, ActivityRecordResult, in).Get(dctx, &rec)
	if err != nil {
		return c.out, fmt.Errorf("record result of %s: %w", c.out.ID(), err)
	}
	c.out.ResultKey = rec.Key
	c.trk.finish(ctx)
	c.notifyParent(ctx)
	return c.out, nil
}

// notifyParent sends the sweep this combination's progress.
func (c *combination) notifyParent(ctx workflow.Context) {
	p := workflow.GetInfo(ctx).ParentWorkflowExecution
	if p == nil {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	// Best effort: the parent may have continued as new or closed.
	_ = workflow.SignalExternalWorkflow(dctx, p.ID, "", SignalProgress, c.out).Get(dctx, nil)
}

// errorMessage is what a failed activity says, in its own words: an
// application error's message, without the chain of causes the SDK
// appends (each wrapped error again, "(type: wrapError, retryable: true)":
// a hostile weights file's one-line reason ran to 1,500 characters).
// A timeout says so first: its cause is the attempt before it's failure.
func errorMessage(err error) string {
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		msg := fmt.Sprintf("timed out (%s)", timeout.TimeoutType())
		if cause := errors.Unwrap(timeout); cause != nil {
			msg += "; the attempt before: " + errorMessage(cause)
		}
		return msg
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if m := appErr.Message(); m != "" {
			return m
		}
		return appErr.Error()
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return err.Error()
}
