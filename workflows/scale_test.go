package workflows

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// scaleRun is what one simulated sweep of n trainings measured.
type scaleRun struct {
	n, runs     int
	largest     int // bytes, the spec left out (it is the user's, and grows with the grid they wrote)
	perTraining time.Duration
	result      SweepProgress
}

// simulateSweep runs a sweep of n = resolutions x seeds trainings (one
// model) through the real Sweep workflow in the SDK's
// test environment, with a double of the Combination workflow that takes
// an hour of the test clock and fails one training in failEvery. It
// follows every continue-as-new, has the children a run leaves running
// report their end by signal in the next, asks the progress query in each
// run, and meters every payload the sweep sends or gets.
func simulateSweep(t *testing.T, resolutions, seeds, failEvery int) scaleRun {
	t.Helper()
	spec := testSpec()
	spec.Name, spec.Epochs, spec.MaxParallel = "scale", 2, 8
	for r := range resolutions {
		spec.Resolutions = append(spec.Resolutions, 8+r)
	}
	for s := range seeds {
		spec.Seeds = append(spec.Seeds, uint64(s+1))
	}
	specBytes, _ := json.Marshal(spec)
	combos := spec.Combinations()
	index := map[string]int{}
	for i, c := range combos {
		index[c.ID()] = i
	}
	outcomeOf := func(c sweep.Combination) sweep.Outcome {
		o := sweep.Outcome{
			Identity: sweep.Identity{Model: c.Model, Family: "cnn", Resolution: c.Resolution, Seed: c.Seed, ConfigHash: hashOf(c.Resolution)},
			Epochs:   2, Status: sweep.Completed, Progress: sweep.Progress{EpochsDone: 2, BestEpoch: 2, BestValLoss: 0.3, BestValAcc: 0.9},
			Course:   sweep.Course{Last: &sweep.EpochMetrics{Epoch: 2, ValLoss: 0.3, ValAcc: 0.9, ImagesPS: 1000}},
			Recorded: sweep.Recorded{Keys: sweep.Keys{Best: "runs/x/epoch_0002.json", Final: "runs/x/epoch_0002.json", Latest: "runs/x/epoch_0002.json"}},
			Timings:  sweep.Timings{DeviceSeconds: 7},
		}
		if index[c.ID()]%failEvery == failEvery-1 {
			o.Status, o.Reason = sweep.Failed, "diverged: loss is NaN at epoch 2 (lower lr)"
		}
		return o
	}
	largest := 0
	note := func(v any, withSpec bool) {
		b, _ := json.Marshal(v)
		n := len(b)
		if withSpec {
			n -= len(specBytes)
		}
		largest = max(largest, n)
	}
	began := time.Now()
	in := SweepInput{Spec: spec}
	out := scaleRun{n: len(combos)}
	for {
		env := newEnv(t)
		// Children of earlier runs report by signal; the server knows none closed.
		env.OnActivity(a.DescribeChildren, mockAny, mockAny).Return(ChildrenOutput{}, nil)
		env.OnWorkflow(Combination, mockAny, mockAny).Return(func(ctx workflow.Context, ci CombinationInput) (sweep.Outcome, error) {
			note(ci, true)
			if err := workflow.Sleep(ctx, time.Hour); err != nil {
				return sweep.Outcome{}, err
			}
			return outcomeOf(ci.Combination), nil
		})
		if in.Carry != nil {
			for k, i := range in.Carry.Running {
				o := outcomeOf(combos[i])
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalProgress, o) }, time.Duration(k+1)*time.Minute)
			}
		}
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(QueryProgress)
			if err != nil {
				t.Errorf("progress query: %v", err)
				return
			}
			var q SweepProgress
			if err := v.Get(&q); err != nil {
				t.Error(err)
			}
			note(q, true)
		}, 90*time.Minute)
		env.ExecuteWorkflow(Sweep, in)
		out.runs++
		var can *workflow.ContinueAsNewError
		if err := env.GetWorkflowError(); errors.As(err, &can) {
			in = SweepInput{}
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			note(in, true)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if err := env.GetWorkflowResult(&out.result); err != nil {
			t.Fatal(err)
		}
		note(out.result, true)
		break
	}
	out.largest = largest
	out.perTraining = time.Since(began) / time.Duration(len(combos))
	return out
}

// The sweep's state does not grow with the sweep: its continue-as-new
// input, query answers, result and children's inputs stay the same size
// from 100 to 10,000 trainings (RESOMAP_SCALE_N=100000 runs 100,000 too), its
// counts still cover every training, and a training costs the workflow
// code about what it costs in a small sweep. Before the ledger, the
// carried state held every outcome: ~1 KB per training, 2 MB (Temporal's
// payload limit) at about 2,000.
func TestSweepStateDoesNotGrowWithN(t *testing.T) {
	// 2,025 trainings fill the ledger (its failures too); 10,000 must
	// not need more.
	grids := [][2]int{{10, 10}, {45, 45}, {100, 100}} // resolutions, seeds (at most 100)
	if v := os.Getenv("RESOMAP_SCALE_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("RESOMAP_SCALE_N=%q: want a number of trainings, at least 100", v)
		}
		grids = append(grids, [2]int{n / 100, 100})
	}
	const failEvery = 50
	var runs []scaleRun
	for _, g := range grids {
		r := simulateSweep(t, g[0], g[1], failEvery)
		runs = append(runs, r)
		t.Logf("N=%6d: %3d runs, largest payload %6d bytes (spec left out), %v of workflow code per training",
			r.n, r.runs, r.largest, r.perTraining.Round(time.Microsecond))
		p := r.result
		failed := r.n / failEvery
		if p.Total != r.n || p.Counts[sweep.Completed] != r.n-failed || p.Counts[sweep.Failed] != failed || len(p.Counts) != 2 {
			t.Errorf("N=%d: total %d, counts %v; want %d completed and %d failed", r.n, p.Total, p.Counts, r.n-failed, failed)
		}
		if bound := ListAllUpTo + listLatest + listProblems; len(p.Combos) > max(bound, 0) || (r.n <= ListAllUpTo) != p.Listed() {
			t.Errorf("N=%d: the result lists %d rows (listed: %v)", r.n, len(p.Combos), p.Listed())
		}
		for _, o := range p.Combos {
			if o.Status == sweep.Failed && o.Reason == "" {
				t.Errorf("N=%d: %s failed with no reason", r.n, o.ID())
			}
		}
	}
	// From the first size past ListAllUpTo on, the largest payload is flat.
	for _, r := range runs[2:] {
		if base := runs[1]; r.largest > base.largest+base.largest/10 {
			t.Errorf("largest payload %d bytes at N=%d, %d at N=%d: it grows with the sweep", r.largest, r.n, base.largest, base.n)
		}
	}
	if big, small := runs[len(runs)-1], runs[1]; big.perTraining > 3*small.perTraining {
		t.Errorf("a training costs %v of workflow code at N=%d, %v at N=%d", big.perTraining, big.n, small.perTraining, small.n)
	}
}
