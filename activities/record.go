package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
	"go.temporal.io/sdk/activity"
)

// RecordResult writes a completed combination into the results index (once
// per config) and its outcome into the sweep.
func (a *Activities) RecordResult(ctx context.Context, in workflows.RecordInput) (workflows.RecordOutput, error) {
	var out workflows.RecordOutput
	if err := a.fillMetrics(ctx, &in.Outcome); err != nil {
		return out, err
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
	if err := a.index().PutOutcome(ctx, in.Sweep, in.Outcome); err != nil {
		return out, err
	}
	// Released last: a waiter that claims now finds the result recorded.
	if in.Owner != "" && in.Outcome.ConfigHash != "" {
		return out, a.claims().Release(ctx, in.Outcome.ConfigHash, in.Owner)
	}
	return out, nil
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
		activity.GetLogger(ctx).Warn("outcome recorded without per-epoch figures: checkpoint gone", "combination", o.ID(), "key", o.Keys.Latest)
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
