package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// `starter status` of a large sweep prints its counts and the rows its
// progress lists, and says how to see the rest; --all prints a row per
// combination (the store's outcome of each that ended, the progress's of
// those it lists, pending for the others) and --failed those that ended
// without a result.
func TestStatusOfALargeSweepPagesItsRows(t *testing.T) {
	dir := t.TempDir()
	storeURL := "file://" + dir
	st, err := store.Open(t.Context(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Epochs = "big", []string{"smallcnn"}, 2
	spec.Resolutions = nil
	for r := range 100 {
		spec.Resolutions = append(spec.Resolutions, 8+r)
	}
	combos := spec.Combinations()
	idx := results.Index{Store: st}
	outcome := func(i int, s sweep.Status) sweep.Outcome {
		c := combos[i]
		return sweep.Outcome{
			Identity: sweep.Identity{Model: c.Model, Family: "cnn", Resolution: c.Resolution},
			Epochs:   2, Status: s, Progress: sweep.Progress{EpochsDone: 2, BestEpoch: 2, BestValAcc: 0.5},
		}
	}
	// 90 ended (every tenth failed), 2 running, 8 not started.
	for i := range 90 {
		s := sweep.Completed
		if i%10 == 9 {
			s = sweep.Failed
		}
		if err := idx.PutOutcome(t.Context(), spec.Name, outcome(i, s)); err != nil {
			t.Fatal(err)
		}
	}
	running := []sweep.Outcome{outcome(90, sweep.Running), outcome(91, sweep.Running)}
	p := workflows.SweepProgress{Name: spec.Name, Spec: &spec, Total: 100, Next: 92, Combos: append([]sweep.Outcome{outcome(89, sweep.Failed)}, running...),
		Counts: map[sweep.Status]int{sweep.Completed: 81, sweep.Failed: 9, sweep.Running: 2, sweep.Pending: 8}}

	var out bytes.Buffer
	if err := printRows(t.Context(), options{store: storeURL}, p, &out, nil); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "100 combinations: 81 completed, 2 running, 8 pending, 9 failed") ||
		!strings.Contains(got, "3 rows shown of 100: `starter status --all` lists every one") || rowsOf(got) != 3 {
		t.Errorf("summary:\n%s", got)
	}
	count := func(s string) [4]int {
		return [4]int{strings.Count(s, " completed "), strings.Count(s, " failed "), strings.Count(s, " running "), strings.Count(s, " pending ")}
	}
	for _, c := range []struct {
		o    options
		want [4]int // completed, failed, running, pending
	}{
		{options{store: storeURL, all: true}, [4]int{81, 9, 2, 8}},
		{options{store: storeURL, failed: true}, [4]int{0, 9, 0, 0}},
	} {
		out.Reset()
		if err := printRows(t.Context(), c.o, p, &out, nil); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if count(got) != c.want || rowsOf(got) != c.want[0]+c.want[1]+c.want[2]+c.want[3] {
			t.Errorf("all=%v failed=%v: %d rows, (completed, failed, running, pending) %v, want %v:\n%s", c.o.all, c.o.failed,
				rowsOf(got), count(got), c.want, got)
		}
	}
	// What the store holds of a combination this run has not started (an
	// earlier run's outcome) is not its row: it is pending, or cancelled
	// if the sweep was cancelled before it started.
	if err := idx.PutOutcome(t.Context(), spec.Name, outcome(95, sweep.Failed)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	_ = printRows(t.Context(), options{store: storeURL, all: true}, p, &out, nil)
	if got := count(out.String()); got != [4]int{81, 9, 2, 8} {
		t.Errorf("an earlier run's outcome of a pending combination shown: %v\n%s", got, out.String())
	}
	cancelled := p
	cancelled.Cancelled, cancelled.Next, cancelled.Unstarted = true, 100, 8
	out.Reset()
	_ = printRows(t.Context(), options{store: storeURL, failed: true}, cancelled, &out, nil)
	if got := strings.Count(out.String(), "sweep cancelled before it started"); got != 8 || rowsOf(out.String()) != 17 {
		t.Errorf("--failed of a cancelled sweep: %d rows, %d cancelled before they started:\n%s", rowsOf(out.String()), got, out.String())
	}
	// Rows in the sweep's order.
	out.Reset()
	_ = printRows(t.Context(), options{store: storeURL, all: true}, p, &out, nil)
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[2], fmt.Sprintf("smallcnn  %d ", combos[0].Resolution)) {
		t.Errorf("first row %q, want %s", lines[2], combos[0].ID())
	}
}

// rowsOf counts the table rows in status output (lines after the header
// that name a model).
func rowsOf(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "smallcnn") {
			n++
		}
	}
	return n
}

// A running sweep's counts say when, at its pace so far, it ends.
func TestStatusEstimatesTheEnd(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	p := workflows.SweepProgress{Total: 100, Began: now.Add(-30 * time.Minute),
		Counts: map[sweep.Status]int{sweep.Completed: 40, sweep.Failed: 10, sweep.Running: 8, sweep.Pending: 42}}
	if got := eta(p, now); got != "; at this pace the rest takes about 30m0s" {
		t.Errorf("half done in 30 minutes: %q", got)
	}
	// Skipped trainings took no time: the pace is the trained ones'.
	skips := workflows.SweepProgress{Total: 100, Began: p.Began,
		Counts: map[sweep.Status]int{sweep.Skipped: 40, sweep.Completed: 10, sweep.Running: 8, sweep.Pending: 42}}
	if got := eta(skips, now); got != "; at this pace the rest takes about 2h30m0s" {
		t.Errorf("40 skipped and 10 trained in 30 minutes: %q", got)
	}
	for _, q := range []workflows.SweepProgress{
		{Total: 100, Began: p.Began, Counts: map[sweep.Status]int{sweep.Running: 8, sweep.Pending: 92}},  // nothing ended yet
		{Total: 100, Began: p.Began, Counts: map[sweep.Status]int{sweep.Skipped: 50, sweep.Pending: 50}}, // nothing trained yet
		{Total: 100, Began: p.Began, Counts: p.Counts, Paused: true},
		{Total: 100, Counts: p.Counts}, // a sweep from before Began was kept
	} {
		if got := eta(q, now); got != "" {
			t.Errorf("%+v: %q, want no estimate", q, got)
		}
	}
}

// A long list of added combinations is shortened to its first ones and a count.
func TestShortList(t *testing.T) {
	names := []string{"a", "b", "c"}
	if got := shortList(names, 3); got != "a, b, c" {
		t.Errorf("%q", got)
	}
	if got := shortList(names, 2); got != "a, b and 1 more" {
		t.Errorf("%q", got)
	}
}
