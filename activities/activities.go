// Package activities holds the Temporal activities of a sweep: they prepare
// a combination, find where its training stands, train one epoch (resuming
// from the last heartbeat checkpoint when retried) and record results.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// Activities is the contract the workflows call by name.
var _ workflows.ActivityAPI = (*Activities)(nil)

// Activities hold the worker's dependencies.
type Activities struct {
	Trainer *trainer.Trainer
	Store   store.Store
	Logger  *slog.Logger
	// Temporal confirms with the server, before a checkpoint is stored,
	// that this attempt is still the current one, and says whether a
	// claim's holder still runs (a Temporal client does both); nil skips
	// the confirmation and counts every holder as running.
	Temporal TemporalClient
	// Resident holds trainings in memory between epochs, so that a
	// combination's next epoch on this worker goes on from memory (nil:
	// none is kept).
	Resident *Residents
	// WorkerQueue is this worker's own task queue: epochs are sent there
	// first when this worker ran the epoch before ("": no stickiness).
	WorkerQueue string
	// Slots bounds the trainings running at once on this worker (its
	// concurrency) over its shared and own queues; nil: no bound.
	Slots chan struct{}

	pruning sync.Map // combination folders being pruned now
}

// residents is the worker's resident-model cache (one that keeps nothing
// when the worker has none).
func (a *Activities) residents() *Residents {
	if a.Resident == nil {
		return &Residents{}
	}
	return a.Resident
}

// TemporalClient is what activities ask the Temporal server directly.
type TemporalClient interface {
	// RecordActivityHeartbeat heartbeats synchronously, failing when the
	// attempt is gone.
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...any) error
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

func (a *Activities) repo(prefix string) checkpoint.Repo {
	return checkpoint.Repo{Store: a.Store, Prefix: prefix}
}

func (a *Activities) index() results.Index { return results.Index{Store: a.Store} }

// invalid wraps a bad-input error so Temporal does not retry it.
func invalid(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidInput, err)
}

func classify(err error) error {
	switch {
	case errors.Is(err, torch.ErrOutOfMemory):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeOutOfMemory, err)
	case errors.Is(err, torch.ErrInvalid), errors.Is(err, dataset.ErrBadData), errors.Is(err, checkpoint.ErrForeign),
		errors.Is(err, sweep.ErrInvalid):
		return invalid(err)
	}
	return err
}

// Prepare validates a combination and stamps its data set's content hash into
// its config, which names the training (skip rule, checkpoint namespace).
func (a *Activities) Prepare(ctx context.Context, in workflows.PrepareInput) (workflows.Prepared, error) {
	cfg, err := a.Trainer.Prepare(in.Spec.Config(in.Combination))
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	h := cfg.Hash()
	if err := a.index().PutSpec(ctx, in.Spec); err != nil {
		return workflows.Prepared{}, err
	}
	id, err := a.Trainer.DataIdentity(cfg.Data) // memoised: Prepare just computed it
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	if err := a.index().PutDataIdentity(ctx, id); err != nil {
		return workflows.Prepared{}, err
	}
	native, err := a.Trainer.NativeSide(cfg.Data)
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	if err := in.Spec.CheckUpsampling(cfg.Model, cfg.Resolution, native); err != nil {
		return workflows.Prepared{}, invalid(err)
	}
	return workflows.Prepared{Config: cfg, ConfigHash: h, Family: sweep.FamilyOf(cfg.Model), Prefix: results.RunsPrefix(h), NativeSide: native}, nil
}

// LookupResult returns the recorded result of a config (Found false if none).
func (a *Activities) LookupResult(ctx context.Context, configHash string) (workflows.LookupOutput, error) {
	o, sw, err := a.index().Lookup(ctx, configHash)
	if err != nil || o == nil {
		return workflows.LookupOutput{}, err
	}
	return workflows.LookupOutput{Found: true, Sweep: sw, Outcome: *o, Key: results.ResultKey(configHash)}, nil
}

// combo is the checkpoint folder of a prepared combination.
func (a *Activities) combo(p workflows.Prepared) checkpoint.Combo {
	return a.repo(p.Prefix).Combo(p.Family, p.Config.Model, p.Config.Resolution)
}

// loadLatest returns the newest good checkpoint of a combination, logging
// every newer one that failed verification.
func (a *Activities) loadLatest(ctx context.Context, p workflows.Prepared) (*checkpoint.Checkpoint, error) {
	c, problems, err := a.repo(p.Prefix).LoadLatest(ctx, a.combo(p))
	a.logProblems(ctx, problems)
	return c, err
}

func (a *Activities) logProblems(ctx context.Context, problems []checkpoint.Problem) {
	for _, pr := range problems {
		a.Logger.Warn("checkpoint failed verification, falling back", "key", pr.Key, "err", pr.Err)
	}
}

// FindResumePoint looks up the newest checkpoint that verifies. Partially
// trained combinations resume from it, across sweeps and terminated runs.
func (a *Activities) FindResumePoint(ctx context.Context, p workflows.Prepared) (workflows.ResumePoint, error) {
	key, r, problems, err := a.repo(p.Prefix).VerifyLatest(ctx, a.combo(p))
	a.logProblems(ctx, problems)
	if err != nil || key == "" {
		return workflows.ResumePoint{}, err
	}
	return workflows.ResumePoint{Key: key, Progress: r.Progress, Step: r.StepInEpoch}, nil
}

// TrainEpoch trains one epoch. A retried attempt reads the last heartbeat
// details and continues from that checkpoint's step, not from the start of
// the epoch; without them it continues from the newest good checkpoint.
// Cancellation and worker shutdown checkpoint first.
func (a *Activities) TrainEpoch(ctx context.Context, in workflows.TrainEpochInput) (workflows.TrainEpochOutput, error) {
	started := time.Now()
	repo := a.repo(in.Prefix)
	hb := newHeartbeater(ctx, a, repo)
	defer hb.stop()
	info := activity.GetInfo(ctx)
	out := workflows.TrainEpochOutput{Attempt: info.Attempt, Device: a.Trainer.Device, WorkerQueue: a.WorkerQueue}
	release, err := a.takeSlot(ctx, hb.setPhase)
	if err != nil {
		return out, err
	}
	defer release()
	s, from, err := a.openSession(ctx, in, hb)
	if err != nil {
		return out, err
	}
	out.RestoreSeconds = time.Since(started).Seconds()
	if s == nil {
		// Already done (a previous attempt finished but its result was
		// lost): report it without training again.
		out.ResumedFrom = sweep.Resume{Epoch: from.Record.EpochsDone + 1, Step: from.Record.StepInEpoch, Attempt: int(info.Attempt)}
		return epochOutput(repo, from.Record, out, started), nil
	}
	at := s.Record()
	out.ResumedFrom = sweep.Resume{Epoch: at.EpochsDone + 1, Step: at.StepInEpoch, Attempt: int(info.Attempt)}
	out.Resident = from == nil && at.EpochsDone > 0
	// Training stops at a step boundary (with a checkpoint) when the
	// activity is cancelled or the worker is shutting down.
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-activity.GetWorkerStopChannel(ctx):
			cancel(errWorkerStopping)
		case <-tctx.Done():
		}
	}()
	res, err := s.Train(tctx, trainer.RunOptions{
		UntilEpoch: in.Epoch, MicroBatch: in.MicroBatch, CheckpointSteps: in.CheckpointSteps,
		CheckpointInterval: time.Duration(in.CheckpointSeconds) * time.Second,
		OnProgress:         hb.progress, OnCheckpoint: hb.checkpoint, StoreFiles: hb.storeFiles, OnPhase: hb.setPhase,
	})
	if err != nil {
		a.residents().drop(s)
		return workflows.TrainEpochOutput{}, interrupted(ctx, tctx, hb.lastKey(), err)
	}
	if res.Last.Record.IsFinal {
		a.residents().drop(s) // nothing more to train: free it for the others
	} else {
		a.residents().put(in.Config.Hash(), hb.lastKey(), in.MicroBatch, s)
	}
	a.Logger.Info("epoch stored", "combination", fmt.Sprintf("%s@%d", in.Config.Model, in.Config.Resolution), "seed", in.Config.Seed,
		"epoch", in.Epoch, "resident", out.Resident, "held_models", a.residents().Count(), "live_models", a.Trainer.Lib.LiveModels())
	out.TrainSeconds, out.EvalSeconds, out.CheckpointSeconds = res.TrainSeconds, res.EvalSeconds, res.CheckpointSeconds
	return epochOutput(repo, res.Last.Record, out, started), nil
}

// takeSlot waits for a training slot (reporting the wait to phase). An
// epoch sent to this worker's own queue does not wait: with every slot
// taken it fails as WorkerBusy, and the workflow sends it to the shared
// queue.
func (a *Activities) takeSlot(ctx context.Context, phase func(string)) (release func(), err error) {
	if a.Slots == nil {
		return func() {}, nil
	}
	select {
	case a.Slots <- struct{}{}:
		return func() { <-a.Slots }, nil
	default:
	}
	if a.WorkerQueue != "" && activity.GetInfo(ctx).TaskQueue == a.WorkerQueue {
		return nil, temporal.NewNonRetryableApplicationError("this worker's training slots are all taken", workflows.ErrTypeWorkerBusy, nil)
	}
	phase(workflows.PhaseWaitingForSlot)
	select {
	case a.Slots <- struct{}{}:
		return func() { <-a.Slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openSession finds the training to continue: the session this worker holds
// at the newest stored checkpoint (a first attempt only: a retry starts
// from its heartbeat), or one opened from the newest good checkpoint. It
// returns a nil session and the checkpoint when that is already past
// in.Epoch.
func (a *Activities) openSession(ctx context.Context, in workflows.TrainEpochInput, hb *heartbeater) (*trainer.Session, *checkpoint.Checkpoint, error) {
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
	s, err := a.Trainer.Open(in.Config, from, hb.setPhase)
	if err != nil {
		a.residents().drop(nil)
		return nil, nil, err
	}
	return s, from, nil
}

// ClaimTraining grants the training of a config to one combination
// workflow at a time: two sweeps that share a config do not both train it.
// A claim whose holder no longer runs (terminated, failed) is taken over.
func (a *Activities) ClaimTraining(ctx context.Context, in workflows.ClaimInput) (workflows.ClaimOutput, error) {
	me := results.Claim{Owner: in.Owner, Since: time.Now().UTC()}
	holder, granted, err := a.index().Claim(ctx, in.ConfigHash, me)
	if err != nil || granted {
		return workflows.ClaimOutput{Granted: granted, Holder: holder.Owner}, err
	}
	running, err := a.isRunning(ctx, holder.Owner)
	if err != nil {
		return workflows.ClaimOutput{}, err
	}
	if running {
		return workflows.ClaimOutput{Holder: holder.Owner}, nil
	}
	a.Logger.Warn("taking over the claim of a combination that no longer runs", "config", in.ConfigHash[:12], "holder", holder.Owner, "by", in.Owner)
	return workflows.ClaimOutput{Granted: true, Holder: in.Owner}, a.index().TakeOver(ctx, in.ConfigHash, me)
}

// isRunning says whether a workflow is running (without a client: yes).
func (a *Activities) isRunning(ctx context.Context, workflowID string) (bool, error) {
	if a.Temporal == nil {
		return true, nil
	}
	d, err := a.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// checkData makes sure this worker's copy of the data set is the one the
// combination was prepared with (same content, wherever it lies and
// whatever its files' times), and names the first file that differs.
func (a *Activities) checkData(ctx context.Context, cfg sweep.Config) error {
	local, err := a.Trainer.DataIdentity(cfg.Data)
	if err != nil {
		return classify(err)
	}
	if local.Hash == cfg.DataHash {
		return nil
	}
	diff := "its file list is not kept"
	if want, err := a.index().DataIdentity(ctx, cfg.DataHash); err == nil {
		if d := dataset.FirstDifference(want, local); d != "" {
			diff = "first difference: " + d
		}
	}
	return invalid(fmt.Errorf("%w: data set %s on this worker differs from the one this training was prepared with (%s)",
		dataset.ErrBadData, cfg.Data, diff))
}

// resumeFrom is the checkpoint an attempt continues from. The heartbeat
// names the newest checkpoint the server heard of; the store may hold a
// newer one whose heartbeat was still throttled when the worker died.
// Whichever is further along wins.
func (a *Activities) resumeFrom(ctx context.Context, p workflows.Prepared) (*checkpoint.Checkpoint, error) {
	from, err := a.loadLatest(ctx, p)
	if err != nil {
		return nil, err
	}
	var hb workflows.Heartbeat
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &hb) == nil && hb.Key != "" {
		c, err := a.repo(p.Prefix).Load(ctx, hb.Key)
		switch {
		case err != nil:
			a.Logger.Warn("heartbeat checkpoint unusable, using the newest good one", "key", hb.Key, "err", err)
		case from == nil || c.Record.After(from.Record):
			from = c
		}
	}
	return from, nil
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
	if n := len(r.Metrics); n > 0 {
		out.Progress.Metrics = r.Metrics[n-1:]
	}
	out.WallSeconds = time.Since(started).Seconds()
	return out
}

// RecordResult writes a completed combination into the results index (once
// per config) and its outcome into the sweep.
func (a *Activities) RecordResult(ctx context.Context, in workflows.RecordInput) (workflows.RecordOutput, error) {
	var out workflows.RecordOutput
	if err := a.fillMetrics(ctx, &in.Outcome); err != nil {
		return out, err
	}
	if in.Owner != "" && in.Outcome.ConfigHash != "" {
		if err := a.index().Release(ctx, in.Outcome.ConfigHash, in.Owner); err != nil {
			return out, err
		}
	}
	if in.Outcome.Status == sweep.Completed {
		if err := a.exportBestAndFinal(ctx, &in.Outcome); err != nil {
			return out, err
		}
		// Another worker may have recorded it first: the same result.
		key, err := a.index().Record(ctx, in.Sweep, in.Outcome)
		if err != nil && !errors.Is(err, results.ErrAlreadyRecorded) {
			return out, err
		}
		out.Key = key
		in.Outcome.ResultKey = key
	}
	return out, a.index().PutOutcome(ctx, in.Sweep, in.Outcome)
}

// fillMetrics puts back the per-epoch figures that the workflow's summary
// leaves out, and the data recipe and skipped images, from the result that
// skipped it or the latest checkpoint.
func (a *Activities) fillMetrics(ctx context.Context, o *sweep.Outcome) error {
	if o.EpochsDone == 0 {
		return nil
	}
	if o.Status == sweep.Skipped && len(o.Metrics) == 0 {
		prev, _, err := a.index().Lookup(ctx, o.ConfigHash)
		if err != nil {
			return err
		}
		if prev != nil {
			o.Metrics, o.Augment, o.SkippedImages, o.ValImages = prev.Metrics, prev.Augment, prev.SkippedImages, prev.ValImages
			return nil
		}
	}
	if o.Keys.Latest == "" {
		return nil
	}
	b, err := store.ReadAll(ctx, a.Store, o.Keys.Latest)
	if errors.Is(err, store.ErrNotFound) {
		a.Logger.Warn("outcome recorded without per-epoch figures: checkpoint gone", "combination", o.ID(), "key", o.Keys.Latest)
		return nil
	}
	if err != nil {
		return fmt.Errorf("figures of %s: %w", o.ID(), err)
	}
	r, err := checkpoint.UnmarshalRecord(b)
	if err != nil {
		return fmt.Errorf("figures of %s: %w", o.ID(), err)
	}
	if len(o.Metrics) == 0 {
		o.Metrics = r.Metrics[:min(len(r.Metrics), o.EpochsDone)]
	}
	if r.Data != nil {
		o.Augment, o.SkippedImages, o.ValImages = r.Data.Augment, r.Data.SkippedImages, r.Data.ValImages
	}
	return nil
}

// exportBestAndFinal writes best_model and final_model, verified copies of
// the epoch checkpoints a completed combination's keys refer to, and points
// the keys at them.
func (a *Activities) exportBestAndFinal(ctx context.Context, o *sweep.Outcome) error {
	repo := a.repo("")
	for _, e := range []struct {
		key  *string
		name checkpoint.Name
	}{{&o.Keys.Best, checkpoint.BestName}, {&o.Keys.Final, checkpoint.FinalName}} {
		if ref, ok := checkpoint.ParseKey(*e.key); *e.key == "" || ok && ref.Name == e.name {
			continue
		}
		k, err := repo.Export(ctx, *e.key, e.name)
		if err != nil {
			return fmt.Errorf("export %s of %s: %w", e.name, o.ID(), err)
		}
		*e.key = k
	}
	return nil
}
