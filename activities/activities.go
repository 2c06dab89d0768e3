// Package activities holds the Temporal activities of a sweep: they prepare
// a combination, find where its training stands, train one epoch (resuming
// from the last heartbeat checkpoint when retried) and record results.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// Error types the workflows act on.
const (
	ErrTypeInvalidInput = "InvalidInput" // never retried
	ErrTypeOutOfMemory  = "OutOfMemory"  // retried by the workflow with half the micro-batch
)

// Activities hold the worker's dependencies.
type Activities struct {
	Trainer *trainer.Trainer
	Store   store.Store
	Logger  *slog.Logger
}

func (a *Activities) repo(prefix string) checkpoint.Repo {
	return checkpoint.Repo{Blobs: a.Store, Prefix: prefix}
}

func (a *Activities) index() results.Index { return results.Index{Store: a.Store} }

// invalid wraps a bad-input error so Temporal does not retry it.
func invalid(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
}

func classify(err error) error {
	switch {
	case errors.Is(err, trainer.ErrOutOfMemory):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeOutOfMemory, err)
	case errors.Is(err, trainer.ErrInvalid), errors.Is(err, dataset.ErrBadData), errors.Is(err, checkpoint.ErrForeign),
		errors.Is(err, sweep.ErrInvalid):
		return invalid(err)
	}
	return err
}

// PrepareInput names one combination of a sweep.
type PrepareInput struct {
	Spec        sweep.Spec
	Combination sweep.Combination
}

// Prepared is a combination's full training config and where it lives.
type Prepared struct {
	Config     trainer.Config
	ConfigHash string
	Family     string
	Prefix     string // checkpoint namespace
}

// Prepare validates a combination and stamps its data set's content hash into
// its config, which names the training (skip rule, checkpoint namespace).
func (a *Activities) Prepare(ctx context.Context, in PrepareInput) (Prepared, error) {
	cfg, err := a.Trainer.Prepare(in.Spec.Config(in.Combination))
	if err != nil {
		return Prepared{}, classify(err)
	}
	info, _ := trainer.LookupModel(cfg.Model)
	h := cfg.Hash()
	if err := a.Store.Put(ctx, results.SpecKey(in.Spec.Name), jsonReader(in.Spec)); err != nil {
		return Prepared{}, err
	}
	return Prepared{Config: cfg, ConfigHash: h, Family: info.Family, Prefix: results.RunsPrefix(h)}, nil
}

// LookupResult returns the recorded result of a config (Found false if none).
type LookupOutput struct {
	Found   bool
	Sweep   string
	Outcome results.Outcome
}

func (a *Activities) LookupResult(ctx context.Context, configHash string) (LookupOutput, error) {
	o, sw, err := a.index().Lookup(ctx, configHash)
	if err != nil || o == nil {
		return LookupOutput{}, err
	}
	return LookupOutput{Found: true, Sweep: sw, Outcome: *o}, nil
}

// ResumePoint is where a combination's training stands in the store.
type ResumePoint struct {
	Key         string // record key of the newest good checkpoint ("" = none)
	EpochsDone  int
	Step        int
	Metrics     []checkpoint.EpochMetrics
	BestEpoch   int
	BestValLoss float64
	BestValAcc  float64
	Problems    []string // newer checkpoints that failed verification
}

// loadLatest returns the newest good checkpoint of a combination, logging
// every newer one that failed verification.
func (a *Activities) loadLatest(ctx context.Context, p Prepared) (*checkpoint.Checkpoint, []checkpoint.Problem, error) {
	c, problems, err := a.repo(p.Prefix).LoadLatest(ctx, p.Family, p.Config.Model, p.Config.Resolution)
	for _, pr := range problems {
		a.Logger.Warn("checkpoint failed verification, falling back", "key", pr.Key, "err", pr.Err)
	}
	return c, problems, err
}

// FindResumePoint looks up the newest checkpoint that verifies. Partially
// trained combinations resume from it, across sweeps and terminated runs.
func (a *Activities) FindResumePoint(ctx context.Context, p Prepared) (ResumePoint, error) {
	c, problems, err := a.loadLatest(ctx, p)
	if err != nil {
		return ResumePoint{}, err
	}
	var rp ResumePoint
	for _, pr := range problems {
		rp.Problems = append(rp.Problems, fmt.Sprintf("%s: %v", pr.Key, pr.Err))
	}
	if c == nil {
		return rp, nil
	}
	r := c.Record
	rp.Key = a.repo(p.Prefix).RecordKey(r, r.BaseNames()[0])
	rp.EpochsDone, rp.Step, rp.Metrics = r.EpochsDone, r.StepInEpoch, r.Metrics
	rp.BestEpoch, rp.BestValLoss, rp.BestValAcc = r.BestEpoch, r.BestValLoss, r.BestValAcc
	return rp, nil
}

// TrainEpochInput asks for training until Epoch epochs are done.
type TrainEpochInput struct {
	Prepared
	Epoch             int // 1-based epoch to finish
	MicroBatch        int
	CheckpointSteps   int
	CheckpointSeconds int
}

// Heartbeat is what TrainEpoch heartbeats: the key of its latest stored
// checkpoint, from which a retried attempt continues.
type Heartbeat struct {
	Key   string  `json:"key"`
	Epoch int     `json:"epoch"` // 1-based epoch in progress
	Step  int     `json:"step"`  // steps done in it at Key
	Done  int     `json:"done"`  // steps done now (progress only)
	Of    int     `json:"of"`
	Loss  float64 `json:"loss"`
}

// TrainEpochOutput is one finished epoch.
type TrainEpochOutput struct {
	Key               string // record key of the epoch checkpoint
	BestKey           string
	FinalKey          string
	Record            checkpoint.Record // without the config
	ResumedFrom       results.Resume    // where this attempt started
	Attempt           int32
	TrainSeconds      float64 // training steps
	EvalSeconds       float64 // validation
	CheckpointSeconds float64 // snapshot + store
	WallSeconds       float64 // the whole activity
	Device            string
}

// TrainEpoch trains one epoch. A retried attempt reads the last heartbeat
// details and continues from that checkpoint's step, not from the start of
// the epoch; without them it continues from the newest good checkpoint.
// Cancellation and worker shutdown checkpoint first.
func (a *Activities) TrainEpoch(ctx context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
	started := time.Now()
	info := activity.GetInfo(ctx)
	repo := a.repo(in.Prefix)
	// The heartbeat names the newest checkpoint the server heard of; the
	// store may hold a newer one whose heartbeat was still throttled when
	// the worker died. Resume from whichever is further along.
	from, _, err := a.loadLatest(ctx, in.Prepared)
	if err != nil {
		return TrainEpochOutput{}, err
	}
	var hb Heartbeat
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &hb) == nil && hb.Key != "" {
		c, err := repo.Load(ctx, hb.Key)
		switch {
		case err != nil:
			a.Logger.Warn("heartbeat checkpoint unusable, using the newest good one", "key", hb.Key, "err", err)
		case from == nil || c.Record.After(from.Record):
			from = c
		}
	}
	out := TrainEpochOutput{Attempt: info.Attempt, Device: a.Trainer.Device}
	out.ResumedFrom = results.Resume{Epoch: 1, Attempt: int(info.Attempt)}
	if from != nil {
		out.ResumedFrom.Epoch, out.ResumedFrom.Step = from.Record.EpochsDone+1, from.Record.StepInEpoch
		if from.Record.EpochsDone >= in.Epoch {
			// Already done (a previous attempt finished but its result was
			// lost): report it without training again.
			return epochOutput(repo, from.Record, out, started), nil
		}
	}
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
	var lastKey string
	var lastStep int
	res, err := a.Trainer.Train(tctx, in.Config, from, trainer.RunOptions{
		UntilEpoch:         in.Epoch,
		MicroBatch:         in.MicroBatch,
		CheckpointSteps:    in.CheckpointSteps,
		CheckpointInterval: time.Duration(in.CheckpointSeconds) * time.Second,
		OnProgress: func(p trainer.Progress) {
			activity.RecordHeartbeat(ctx, Heartbeat{Key: lastKey, Epoch: in.Epoch, Step: lastStep, Done: p.Step, Of: p.StepsPerEpoch, Loss: p.Loss})
		},
		OnCheckpoint: func(cctx context.Context, c *checkpoint.Checkpoint) error {
			key, err := repo.Save(cctx, c)
			if err != nil {
				return err
			}
			lastKey, lastStep = key, c.Record.StepInEpoch
			if c.Record.Kind == checkpoint.KindEpoch {
				lastStep = 0
			}
			activity.RecordHeartbeat(ctx, Heartbeat{Key: key, Epoch: in.Epoch, Step: lastStep, Done: lastStep, Of: c.Record.StepsPerEpoch})
			a.prune(cctx, repo, c.Record)
			return nil
		},
	})
	if err != nil {
		if errors.Is(err, trainer.ErrInterrupted) {
			if errors.Is(context.Cause(tctx), errWorkerStopping) {
				// Retryable: another worker continues from the heartbeat.
				return TrainEpochOutput{}, fmt.Errorf("worker stopping, checkpoint %s saved: %w", lastKey, err)
			}
			return TrainEpochOutput{}, ctx.Err()
		}
		return TrainEpochOutput{}, classify(err)
	}
	out.TrainSeconds, out.EvalSeconds, out.CheckpointSeconds = res.TrainSeconds, res.EvalSeconds, res.CheckpointSeconds
	return epochOutput(repo, res.Last.Record, out, started), nil
}

var errWorkerStopping = errors.New("worker stopping")

func epochOutput(repo checkpoint.Repo, r checkpoint.Record, out TrainEpochOutput, started time.Time) TrainEpochOutput {
	out.Key = repo.RecordKey(r, checkpoint.EpochBase(r.EpochsDone))
	if r.BestEpoch > 0 {
		out.BestKey = repo.RecordKey(r, checkpoint.BestBase)
	}
	if r.EpochsDone == r.Epochs {
		out.FinalKey = repo.RecordKey(r, checkpoint.FinalBase)
	}
	r.Config = nil
	out.Record = r
	out.WallSeconds = time.Since(started).Seconds()
	return out
}

// RecordInput is a finished combination.
type RecordInput struct {
	Sweep   string
	Outcome results.Outcome
}

// RecordOutput says where the result is and whether another worker was first.
type RecordOutput struct {
	Key             string
	AlreadyRecorded bool
}

// RecordResult writes a completed combination into the results index (once
// per config) and its outcome into the sweep.
func (a *Activities) RecordResult(ctx context.Context, in RecordInput) (RecordOutput, error) {
	var out RecordOutput
	if in.Outcome.Status == results.Completed {
		key, err := a.index().Record(ctx, in.Sweep, in.Outcome)
		switch {
		case errors.Is(err, results.ErrAlreadyRecorded):
			out.AlreadyRecorded = true
		case err != nil:
			return out, err
		}
		out.Key = key
		in.Outcome.ResultKey = key
	}
	return out, a.index().PutOutcome(ctx, in.Sweep, in.Outcome)
}
