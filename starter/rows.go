package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// A sweep's progress lists every combination of a small sweep, and of a
// large one only the running ones and a few that ended (its state must
// not grow with the sweep): the counts say how all of them stand, and
// the store holds every ended one's outcome. These are the rows `starter
// status` prints.

// countsLine says how many combinations stand how ("" for a result of a
// sweep before counts were kept).
func countsLine(p workflows.SweepProgress) string {
	if p.Total == 0 {
		return ""
	}
	order := []sweep.Status{sweep.Completed, sweep.Skipped, sweep.Running, sweep.Paused, sweep.Pending,
		sweep.Failed, sweep.Cancelled, sweep.Terminated, sweep.TimedOut}
	var parts []string
	for _, st := range order {
		if n := p.Counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	for _, st := range slices.Sorted(maps.Keys(p.Counts)) { // any status this starter does not know
		if !slices.Contains(order, st) && p.Counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.Counts[st], st))
		}
	}
	return fmt.Sprintf("%d combinations: %s", p.Total, strings.Join(parts, ", "))
}

// eta estimates when a running sweep ends, from the pace of the trainings
// it ran so far (skipped ones took no time; paused time counts) ("" when
// it cannot: ended, paused, or nothing has been trained yet).
func eta(p workflows.SweepProgress, now time.Time) string {
	ended, trained := 0, 0
	for st, n := range p.Counts {
		if st.Done() {
			ended += n
			if st != sweep.Skipped {
				trained += n
			}
		}
	}
	if p.Done || p.Paused || p.Cancelled || trained == 0 || ended >= p.Total || p.Began.IsZero() || !now.After(p.Began) {
		return ""
	}
	left := time.Duration(float64(now.Sub(p.Began)) / float64(trained) * float64(p.Total-ended))
	unit := time.Minute
	if left < 10*time.Minute {
		unit = time.Second
	}
	return fmt.Sprintf("; at this pace the rest takes about %v", left.Round(unit))
}

// unlisted says how many combinations the progress does not list and how
// to see them ("" when it lists every one).
func unlisted(p workflows.SweepProgress) string {
	if p.Listed() {
		return ""
	}
	return fmt.Sprintf("(%d rows shown of %d: `starter status --all` lists every one, `--failed` those that ended without a result)",
		len(p.Combos), p.Total)
}

// storedRows are a row per combination of the sweep, in the order they
// train: the progress's rows as the sweep knows them now; for one that has
// not started, pending (or cancelled, if the sweep was cancelled before
// it started); for the others, their outcome as the store holds it (each
// combination records its own when it ends). With onlyFailed, only those
// that ended without a result.
func storedRows(ctx context.Context, storeURL string, p workflows.SweepProgress, onlyFailed bool) ([]sweep.Outcome, error) {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	stored, err := results.Index{Store: st}.Outcomes(ctx, p.Name)
	if err != nil {
		return nil, fmt.Errorf("read the outcomes of sweep %s from %s: %w", p.Name, st.URL(), err)
	}
	if p.Total == 0 { // the result of a sweep before counts: it lists every one
		var out []sweep.Outcome
		for _, o := range p.Combos {
			if !onlyFailed || o.Status.Done() && !o.Status.HasResult() {
				out = append(out, o)
			}
		}
		return out, nil
	}
	live := map[string]sweep.Outcome{}
	for _, o := range p.Combos {
		live[o.ID()] = o
	}
	order := p.Order()
	var out []sweep.Outcome
	for i, c := range order {
		o := rowOf(c, i, p, live, stored)
		if onlyFailed && (!o.Status.Done() || o.Status.HasResult()) {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// rowOf is combination c's row: c is the i-th combination of the sweep.
func rowOf(c sweep.Combination, i int, p workflows.SweepProgress, live, stored map[string]sweep.Outcome) sweep.Outcome {
	if o, ok := live[c.ID()]; ok {
		return o
	}
	var spec sweep.Spec // the epochs unknown without one
	if p.Spec != nil {
		spec = *p.Spec
	}
	o := spec.Pending(c)
	switch {
	case i >= p.Total-p.Unstarted:
		o.Status, o.Reason = sweep.Cancelled, workflows.ReasonUnstarted
		return o
	case i >= p.Next:
		return o
	}
	if s, ok := stored[c.ID()]; ok {
		return s
	}
	if alias, ok := spec.Alias(c); ok && p.Spec != nil && c.Seed != 0 { // named before the sweep was given seeds
		if s, ok := stored[alias.ID()]; ok {
			return s
		}
	}
	o.Status, o.Reason = sweep.Status("ended"), "its outcome is not in the store"
	return o
}

// printRows prints the progress's counts and the rows asked for.
func printRows(ctx context.Context, o options, p workflows.SweepProgress, w io.Writer, notes map[string]string) error {
	if line := countsLine(p); line != "" {
		fmt.Fprintln(w, line+eta(p, time.Now()))
	}
	if !o.all && !o.failed {
		printTable(w, p.Combos, notes)
		if more := unlisted(p); more != "" {
			fmt.Fprintln(w, more)
		}
		return nil
	}
	rows, err := storedRows(ctx, o.store, p, o.failed)
	if err != nil {
		return err
	}
	printTable(w, rows, notes)
	return nil
}
