package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// trained is a completed training's outcome as its run records it.
func trained(res int, seed uint64, hash string, acc, deviceSeconds float64) sweep.Outcome {
	o := sweep.Outcome{
		Identity: sweep.Identity{Model: "smallcnn", Family: "cnn", Resolution: res, Seed: seed, ConfigHash: hash},
		Status:   sweep.Completed, Epochs: 1,
		Recorded:  sweep.Recorded{Keys: sweep.Keys{Best: "b", Final: "f"}},
		Timings:   sweep.Timings{EpochRuns: 1, TrainSeconds: deviceSeconds, DeviceSeconds: deviceSeconds, EpochSeconds: deviceSeconds + 1, WallSeconds: deviceSeconds + 2},
		DataFacts: sweep.DataFacts{ValImages: 1000},
		TestFacts: sweep.TestFacts{TestResults: []sweep.TestResult{{Resolution: res, ValAcc: acc, Images: 1000}}},
	}
	o.Progress = sweep.Progress{EpochsDone: 1, BestEpoch: 1, BestValAcc: acc, Metrics: []sweep.EpochMetrics{{Epoch: 1, ValAcc: acc, ImagesPS: 500}}}
	return o
}

// adopted is what a grown sweep's workflow records of a training it
// skipped: the accuracies, not the rest (as skipIfDone copies them).
func adopted(o sweep.Outcome, seed uint64) sweep.Outcome {
	return sweep.Outcome{
		Identity: sweep.Identity{Model: o.Model, Family: o.Family, Resolution: o.Resolution, Seed: seed, ConfigHash: o.ConfigHash},
		Status:   sweep.Skipped, Epochs: o.Epochs, Progress: o.Progress, Reason: "already completed by sweep g",
		Recorded: sweep.Recorded{Keys: o.Keys},
	}
}

// A finished one-seed, one-resolution sweep grown by seeds and by a
// resolution: each training is counted once (the first one was both
// smallcnn@16 and smallcnn@16-seed1), and the skipped row shows the
// figures of the run that trained it (compute hours, time split, test
// resolutions), so it stays on the Pareto front and in the train x test
// map.
func TestGrownSweepCountsEachTrainingOnceWithItsFigures(t *testing.T) {
	ctx := context.Background()
	st, _ := store.NewFile(t.TempDir())
	idx := results.Index{Store: st}
	first := trained(16, 0, strings.Repeat("a", 64), 0.86, 10) // the best, and cheaper than 24 px
	if _, err := idx.Record(ctx, "g", first); err != nil {
		t.Fatal(err)
	}
	if err := idx.PutOutcome(ctx, "g", first); err != nil {
		t.Fatal(err)
	}
	// Grown: seeds 1 (the spec's, the same training), 2 and 3; resolution 24.
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Seeds, spec.Epochs = "g", []string{"smallcnn"}, []int{16, 24}, []uint64{1, 2, 3}, 1
	b, _ := json.Marshal(spec)
	st.Put(ctx, results.SpecKey("g"), bytes.NewReader(b))
	others := []sweep.Outcome{adopted(first, 1), trained(16, 2, strings.Repeat("b", 64), 0.82, 10), trained(16, 3, strings.Repeat("c", 64), 0.84, 10)}
	for i, seed := range []uint64{1, 2, 3} {
		others = append(others, trained(24, seed, strings.Repeat(string(rune('d'+i)), 64), 0.70, 20))
	}
	for _, o := range others {
		if err := idx.PutOutcome(ctx, "g", o); err != nil {
			t.Fatal(err)
		}
	}
	r, err := report.Build(ctx, st, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 6 {
		t.Fatalf("%d rows, want 6 (2 resolutions x 3 seeds, each training once)", len(r.Rows))
	}
	hashes := map[string]bool{}
	var skipped *report.Row
	for i, x := range r.Rows {
		if hashes[x.ConfigHash] {
			t.Errorf("training %s has two rows", x.ConfigHash)
		}
		hashes[x.ConfigHash] = true
		if x.Cell == nil || x.Cell.N != 3 {
			t.Errorf("%s@%d seed %d: cell %+v, want 3 seeds", x.Model, x.Resolution, x.Seed, x.Cell)
		}
		if x.Status == string(sweep.Skipped) {
			skipped = &r.Rows[i]
		}
	}
	if skipped == nil || skipped.Seed != 1 || skipped.ComputeHours == nil || *skipped.ComputeHours != 10.0/3600 ||
		skipped.PerEpoch == nil || skipped.WallSeconds == nil || skipped.ImagesPerSec == nil || !strings.Contains(skipped.FiguresFrom, "sweep g") {
		t.Fatalf("the adopted training's row: %+v", skipped)
	}
	var cost, acc []float64
	for _, x := range r.Rows {
		cost, acc = append(cost, *x.ComputeHours), append(acc, *x.BestValAcc)
	}
	onFront := false
	for _, i := range report.ParetoFront(cost, acc) {
		onFront = onFront || r.Rows[i].Status == string(sweep.Skipped)
	}
	if !onFront {
		t.Error("the adopted training (more accurate and cheaper than 24 px) is not on the Pareto front")
	}
	dir := t.TempDir()
	if _, err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	tr, _ := os.ReadFile(filepath.Join(dir, "test_resolutions.csv"))
	if n := bytes.Count(tr, []byte("\nsmallcnn,16,16,")); n != 3 {
		t.Errorf("train x test rows at 16 px: %d, want 3 (one per seed)\n%s", n, tr)
	}
}
