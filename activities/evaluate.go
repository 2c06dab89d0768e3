package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// EvaluateAtResolutions evaluates a completed training's best checkpoint at
// each test resolution with the validation transform at that size (the
// train x test resolution map). Results are stored per (config, test
// resolution) as they come, so a retried or repeated call evaluates
// nothing twice; a size that would measure upsampling is skipped unless the
// sweep allows it.
func (a *Activities) EvaluateAtResolutions(ctx context.Context, in workflows.EvaluateInput) (out workflows.EvaluateOutput, err error) {
	started := time.Now()
	defer func() { out.Seconds = time.Since(started).Seconds() }()
	// Heartbeats go on while it evaluates (a large model over a real
	// validation folder at 640 px outlasts any heartbeat timeout).
	hb := newHeartbeater(ctx)
	defer hb.stop()
	ctx = hb.watching(ctx)
	beat := hb.setPhase
	// A model in memory like a training's: it takes a training slot and
	// counts against the worker's bound of models.
	slot, waited, err := a.takeSlotWaiting(ctx, beat, started)
	if err != nil {
		return out, err
	}
	defer slot.Release()
	out.WaitSeconds = waited
	started = time.Now() // Seconds: evaluating, the slot's wait apart
	var results map[int]sweep.TestResult
	loaded := false // Load's errors are returned as they are
	err = a.Engine.Evaluate(ctx, slot, engine.EvaluationRun{
		Config: in.Config, MicroBatch: in.MicroBatch,
		Load: func(ctx context.Context) (rec checkpoint.Record, weights []byte, todo []int, err error) {
			defer func() { loaded = err == nil }()
			if results, todo, err = a.storedOrSkipped(ctx, in); err != nil || len(todo) == 0 {
				return rec, nil, nil, err
			}
			if rec, weights, err = a.repo(in.Prefix).LoadWeights(ctx, in.BestKey); err != nil {
				return rec, nil, nil, classify(err)
			}
			return rec, weights, todo, nil
		},
		Store: func(ev engine.Evaluation) error {
			beat(fmt.Sprintf("evaluated at %d px", ev.Resolution))
			r := sweep.TestResult{Resolution: ev.Resolution, ValAcc: ev.Acc, ValLoss: ev.Loss, Images: ev.Images}
			results[r.Resolution] = r
			out.Evaluated++
			return a.index().PutTestResult(ctx, in.ConfigHash, r)
		},
		Progress: func(res int, p engine.BuildProgress) { beat(fmt.Sprintf("evaluating at %d px: %s", res, p)) },
		Log:      activity.GetLogger(ctx),
	})
	out.Results = ordered(in.Resolutions, results)
	switch {
	case err != nil && !loaded:
		return out, err
	case err != nil:
		return out, classify(err)
	}
	return out, nil
}

// storedOrSkipped are the results already stored or not to compute (out of
// the model's range, or upsampling the sweep does not allow), by size, and
// the sizes left to evaluate.
func (a *Activities) storedOrSkipped(ctx context.Context, in workflows.EvaluateInput) (map[int]sweep.TestResult, []int, error) {
	native, err := a.Engine.Trainer.NativeSide(in.Config.Data)
	if err != nil {
		return nil, nil, classify(err)
	}
	info, err := sweep.LookupModel(in.Config.Model)
	if err != nil {
		return nil, nil, invalid(err)
	}
	results := map[int]sweep.TestResult{}
	var todo []int
	for _, res := range in.Resolutions {
		// The verdict first: it is this sweep's (its allow_upsampling),
		// never one stored under the training's hash by another sweep
		// (earlier versions stored verdicts; they are not read back).
		if why := skipReason(info, res, native, in.AllowUpsampling); why != "" {
			results[res] = sweep.TestResult{Resolution: res, Skipped: why}
			continue
		}
		switch stored, err := a.index().TestResult(ctx, in.ConfigHash, res); {
		case err != nil:
			return nil, nil, err
		case stored != nil && stored.Skipped == "":
			results[res] = *stored // figures are the training's
		default:
			todo = append(todo, res)
		}
	}
	return results, todo, nil
}

// skipReason says why a sweep does not evaluate size res ("": it does).
func skipReason(info sweep.ModelInfo, res, native int, allowUpsampling bool) string {
	if err := info.CheckResolution(res); err != nil {
		// Its own words: out of range, or not a multiple of a ViT's patch.
		return strings.TrimPrefix(err.Error(), sweep.ErrInvalid.Error()+": ")
	}
	switch {
	case sweep.Upsampled(res, native) && !allowUpsampling:
		return fmt.Sprintf("%d px would measure upsampling of %d px images", res, native)
	}
	return ""
}

// ordered lists results in the order of sizes.
func ordered(sizes []int, results map[int]sweep.TestResult) []sweep.TestResult {
	var out []sweep.TestResult
	for _, s := range sizes {
		if r, ok := results[s]; ok {
			out = append(out, r)
		}
	}
	return out
}
