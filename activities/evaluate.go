package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// EvaluateAtResolutions evaluates a completed training's best checkpoint at
// each test resolution with the validation transform at that size (the
// train x test resolution map). Results are stored per (config, test
// resolution) as they come, so a retried or repeated call evaluates
// nothing twice; a size that would measure upsampling is skipped unless the
// sweep allows it.
func (a *Activities) EvaluateAtResolutions(ctx context.Context, in workflows.EvaluateInput) (workflows.EvaluateOutput, error) {
	var out workflows.EvaluateOutput
	// A model in memory like a training's: it takes a training slot and
	// counts against the worker's bound of models.
	release, err := a.takeSlot(ctx, func(p string) { activity.RecordHeartbeat(ctx, workflows.Heartbeat{Phase: p}) })
	if err != nil {
		return out, err
	}
	defer release()
	a.residents().reserve()
	defer a.residents().drop(nil)
	c, err := a.repo(in.Prefix).Load(ctx, in.BestKey)
	if err != nil {
		return out, classify(err)
	}
	native, err := a.Trainer.NativeSide(in.Config.Data)
	if err != nil {
		return out, classify(err)
	}
	for _, res := range in.Resolutions {
		r, fresh, err := a.evaluateOne(ctx, in, c, res, native)
		if err != nil {
			return out, err
		}
		out.Results = append(out.Results, r)
		if fresh {
			out.Evaluated++
		}
	}
	return out, nil
}

// evaluateOne is the stored result at res, or a new one (fresh).
func (a *Activities) evaluateOne(ctx context.Context, in workflows.EvaluateInput, c *checkpoint.Checkpoint, res, native int) (sweep.TestResult, bool, error) {
	if r, err := a.index().TestResult(ctx, in.ConfigHash, res); err != nil || r != nil {
		return derefOr(r), false, err
	}
	phase := func(s string) {
		activity.RecordHeartbeat(ctx, workflows.Heartbeat{Phase: fmt.Sprintf("evaluating at %d px: %s", res, s)})
	}
	r := sweep.TestResult{Resolution: res}
	if info, _ := sweep.LookupModel(in.Config.Model); info.CheckResolution(res) != nil {
		r.Skipped = fmt.Sprintf("%d px is outside %s's range", res, in.Config.Model)
	} else if sweep.Upsampled(res, native) && !in.AllowUpsampling {
		r.Skipped = fmt.Sprintf("%d px would measure upsampling of %d px images", res, native)
	} else {
		phase("opening data")
		ev, err := a.Trainer.EvaluateAt(in.Config, c, res, in.MicroBatch, func(p dataset.BuildProgress) { phase(p.String()) })
		if err != nil {
			return r, false, classify(err)
		}
		r.ValAcc, r.ValLoss, r.Images = ev.Acc, ev.Loss, ev.Images
	}
	return r, true, a.index().PutTestResult(ctx, in.ConfigHash, r)
}

func derefOr(r *sweep.TestResult) sweep.TestResult {
	if r == nil {
		return sweep.TestResult{}
	}
	return *r
}
