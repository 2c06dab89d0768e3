package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/trainer"
)

// a is used only for its method values, which name the activities.
var a *activities.Activities

// combination is the state of one Combination workflow.
type combination struct {
	in        CombinationInput
	out       results.Outcome
	paused    bool
	cancelled bool
	// stopActivity cancels the running TrainEpoch, which checkpoints first.
	stopActivity workflow.CancelFunc
}

func (c *combination) setStatus(ctx workflow.Context, s results.Status) {
	c.out.Status = s
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(string(s)))
}

func (c *combination) pause() error {
	if c.out.Status.Done() {
		return fmt.Errorf("%s is %s: nothing to pause", c.out.ID(), c.out.Status)
	}
	if c.paused {
		return fmt.Errorf("%s is already paused", c.out.ID())
	}
	return nil
}

func (c *combination) resume() error {
	if c.out.Status.Done() {
		return fmt.Errorf("%s is %s: nothing to resume", c.out.ID(), c.out.Status)
	}
	if !c.paused {
		return fmt.Errorf("%s is not paused", c.out.ID())
	}
	return nil
}

func (c *combination) cancel() error {
	if c.out.Status.Done() {
		return fmt.Errorf("%s is %s: nothing to cancel", c.out.ID(), c.out.Status)
	}
	return nil
}

// control applies a pause, resume or cancel.
func (c *combination) control(ctx workflow.Context, name string) {
	switch name {
	case SignalPause:
		if c.pause() != nil {
			return
		}
		c.paused = true
		c.setStatus(ctx, results.Paused)
	case SignalResume:
		if c.resume() != nil {
			return
		}
		c.paused = false
		c.setStatus(ctx, results.Running)
		return
	case SignalCancel:
		if c.cancel() != nil {
			return
		}
		c.cancelled = true
	default:
		return
	}
	if c.stopActivity != nil {
		c.stopActivity()
	}
}

// listenForControl routes signals and updates to control.
func (c *combination) listenForControl(ctx workflow.Context) error {
	for _, u := range []struct {
		name, signal string
		valid        func() error
	}{{UpdatePause, SignalPause, c.pause}, {UpdateResume, SignalResume, c.resume}, {UpdateCancel, SignalCancel, c.cancel}} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, func(ctx workflow.Context) (string, error) {
			c.control(ctx, u.signal)
			return string(c.out.Status), nil
		}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return u.valid() }})
		if err != nil {
			return err
		}
	}
	pauseCh := workflow.GetSignalChannel(ctx, SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, SignalResume)
	cancelCh := workflow.GetSignalChannel(ctx, SignalCancel)
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(pauseCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.control(ctx, SignalPause) })
		sel.AddReceive(resumeCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.control(ctx, SignalResume) })
		sel.AddReceive(cancelCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.control(ctx, SignalCancel) })
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

func shortOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput},
		},
	}
}

// Combination trains one (model, resolution) pair: skip it if its config
// already completed, resume it from its newest good checkpoint, then one
// TrainEpoch activity per epoch, with early stopping, OOM back-off and
// pause/resume/cancel.
func Combination(ctx workflow.Context, in CombinationInput) (results.Outcome, error) {
	spec := in.Spec.WithDefaults()
	cfg := spec.Config(in.Combination)
	info, _ := trainer.LookupModel(cfg.Model)
	c := &combination{in: in, paused: in.Paused}
	c.out = results.Outcome{Model: cfg.Model, Family: info.Family, Resolution: cfg.Resolution, Epochs: cfg.Epochs,
		Status: results.Pending, MicroBatch: spec.Hyper.MicroBatch}
	if c.out.MicroBatch == 0 {
		c.out.MicroBatch = cfg.BatchSize
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (results.Outcome, error) { return c.out, nil }); err != nil {
		return c.out, err
	}
	if err := c.listenForControl(ctx); err != nil {
		return c.out, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrSweep.ValueSet(spec.Name), AttrModel.ValueSet(cfg.Model),
		AttrResolution.ValueSet(int64(cfg.Resolution)), AttrStatus.ValueSet(string(c.out.Status)))
	started := workflow.Now(ctx)

	finish := func(s results.Status, reason string) (results.Outcome, error) {
		c.out.Reason = reason
		c.setStatus(ctx, s)
		c.out.FinishedAt = workflow.Now(ctx)
		c.out.WallSeconds = workflow.Now(ctx).Sub(started).Seconds()
		c.out.OtherSeconds = max(0, c.out.WallSeconds-c.out.TrainSeconds)
		// Recorded even when the workflow was cancelled.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		dctx = workflow.WithActivityOptions(dctx, shortOptions())
		var rec activities.RecordOutput
		err := workflow.ExecuteActivity(dctx, a.RecordResult, activities.RecordInput{Sweep: spec.Name, Outcome: c.out}).Get(dctx, &rec)
		if err != nil {
			return c.out, fmt.Errorf("record result of %s: %w", c.out.ID(), err)
		}
		c.out.ResultKey = rec.Key
		c.notifyParent(ctx)
		return c.out, nil
	}

	sctx := workflow.WithActivityOptions(ctx, shortOptions())
	var prep activities.Prepared
	if err := workflow.ExecuteActivity(sctx, a.Prepare, activities.PrepareInput{Spec: spec, Combination: in.Combination}).Get(ctx, &prep); err != nil {
		return finish(results.Failed, "prepare: "+errorMessage(err))
	}
	c.out.ConfigHash = prep.ConfigHash
	var found activities.LookupOutput
	if err := workflow.ExecuteActivity(sctx, a.LookupResult, prep.ConfigHash).Get(ctx, &found); err != nil {
		return finish(results.Failed, "lookup result: "+errorMessage(err))
	}
	if found.Found {
		prev := found.Outcome
		c.out.Metrics, c.out.EpochsDone, c.out.Keys = prev.Metrics, prev.EpochsDone, prev.Keys
		c.out.BestEpoch, c.out.BestValLoss, c.out.BestValAcc = prev.BestEpoch, prev.BestValLoss, prev.BestValAcc
		c.out.Device, c.out.TrainSeconds, c.out.EarlyStopped = prev.Device, prev.TrainSeconds, prev.EarlyStopped
		c.out.SkippedFrom = found.Sweep
		return finish(results.Skipped, "already completed by sweep "+found.Sweep+" ("+results.ResultKey(prep.ConfigHash)+")")
	}
	var rp activities.ResumePoint
	if err := workflow.ExecuteActivity(sctx, a.FindResumePoint, prep).Get(ctx, &rp); err != nil {
		return finish(results.Failed, "find resume point: "+errorMessage(err))
	}
	c.out.EpochsDone, c.out.Step, c.out.Metrics = rp.EpochsDone, rp.Step, rp.Metrics
	c.out.BestEpoch, c.out.BestValLoss, c.out.BestValAcc = rp.BestEpoch, rp.BestValLoss, rp.BestValAcc
	c.out.Keys.Latest = rp.Key
	if rp.Key != "" {
		c.out.Resumes = append(c.out.Resumes, results.Resume{Epoch: rp.EpochsDone + 1, Step: rp.Step, Reason: "found checkpoint"})
	}

	retry := &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		MaximumAttempts:        int32(spec.Activity.MaxAttempts),
		NonRetryableErrorTypes: []string{activities.ErrTypeInvalidInput, activities.ErrTypeOutOfMemory},
	}
	if c.paused {
		c.setStatus(ctx, results.Paused)
	} else {
		c.setStatus(ctx, results.Running)
	}
	for c.out.EpochsDone < cfg.Epochs {
		if err := workflow.Await(ctx, func() bool { return !c.paused || c.cancelled }); err != nil {
			return finish(results.Cancelled, "workflow cancelled")
		}
		if c.cancelled {
			return finish(results.Cancelled, "cancelled by signal")
		}
		epoch := c.out.EpochsDone + 1
		actx, stop := workflow.WithCancel(ctx)
		c.stopActivity = stop
		actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
			// An epoch may take hours; liveness comes from heartbeats.
			StartToCloseTimeout: 7 * 24 * time.Hour,
			HeartbeatTimeout:    time.Duration(spec.Activity.HeartbeatTimeoutSeconds) * time.Second,
			WaitForCancellation: true,
			RetryPolicy:         retry,
			Summary:             fmt.Sprintf("%s epoch %d/%d", c.out.ID(), epoch, cfg.Epochs),
		})
		var res activities.TrainEpochOutput
		err := workflow.ExecuteActivity(actx, a.TrainEpoch, activities.TrainEpochInput{
			Prepared: prep, Epoch: epoch, MicroBatch: c.out.MicroBatch,
			CheckpointSteps: spec.Checkpoint.EverySteps, CheckpointSeconds: spec.Checkpoint.EverySeconds,
		}).Get(ctx, &res)
		c.stopActivity = nil
		stop()
		if err != nil {
			var canceled *temporal.CanceledError
			var appErr *temporal.ApplicationError
			switch {
			case ctx.Err() != nil:
				return finish(results.Cancelled, "workflow cancelled")
			case errors.As(err, &canceled) && c.cancelled:
				return finish(results.Cancelled, "cancelled by signal")
			case errors.As(err, &canceled) && c.paused:
				continue // the activity checkpointed; wait for resume
			case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeOutOfMemory && c.out.MicroBatch > 1:
				// Same effective batch, half the memory: the result stays the same.
				c.out.OOMs++
				c.out.MicroBatch = (c.out.MicroBatch + 1) / 2
				c.out.Resumes = append(c.out.Resumes, results.Resume{Epoch: epoch, Reason: fmt.Sprintf("out of memory: micro-batch now %d", c.out.MicroBatch)})
				workflow.GetLogger(ctx).Warn("out of memory, halving micro-batch", "combination", c.out.ID(), "micro_batch", c.out.MicroBatch)
				continue
			default:
				return finish(results.Failed, fmt.Sprintf("epoch %d: %s", epoch, errorMessage(err)))
			}
		}
		c.apply(res)
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrEpoch.ValueSet(int64(c.out.EpochsDone)), AttrBestValAcc.ValueSet(c.out.BestValAcc))
		c.notifyParent(ctx)
		if spec.Patience > 0 && c.out.EpochsDone-c.out.BestEpoch >= spec.Patience && c.out.EpochsDone < cfg.Epochs {
			c.out.EarlyStopped = true
			c.out.Keys.Final = res.Key
			break
		}
	}
	return finish(results.Completed, "")
}

// apply takes in one finished epoch.
func (c *combination) apply(res activities.TrainEpochOutput) {
	r := res.Record
	if res.Attempt > 1 {
		c.out.Resumes = append(c.out.Resumes, results.Resume{Epoch: res.ResumedFrom.Epoch, Step: res.ResumedFrom.Step,
			Attempt: int(res.Attempt), Reason: "activity retried from its heartbeat checkpoint"})
	}
	c.out.EpochsDone, c.out.Step = r.EpochsDone, 0
	c.out.Metrics = r.Metrics
	c.out.BestEpoch, c.out.BestValLoss, c.out.BestValAcc = r.BestEpoch, r.BestValLoss, r.BestValAcc
	c.out.Keys.Latest, c.out.Keys.Best = res.Key, res.BestKey
	if res.FinalKey != "" {
		c.out.Keys.Final = res.FinalKey
	}
	c.out.TrainSeconds += res.TrainSeconds
	c.out.EvalSeconds += res.EvalSeconds
	c.out.CkptSeconds += res.CheckpointSeconds
	c.out.EpochSeconds += res.WallSeconds
	c.out.Device = res.Device
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

func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return err.Error()
}
