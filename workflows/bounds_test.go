package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// payloadMeter records the largest JSON payload a workflow sends or gets.
type payloadMeter struct{ largest int }

func (p *payloadMeter) note(v any) {
	b, _ := json.Marshal(v)
	p.largest = max(p.largest, len(b))
}

// oneEpochFake trains by returning only the epoch's figures, as TrainEpoch
// does, and counts the epochs of the current run.
func oneEpochFake(env *testsuite.TestWorkflowEnvironment, meter *payloadMeter, thisRun *int) {
	mockTrainingSetup(env, hashByResolution, nil)
	env.OnActivity(a.TrainEpoch, mockAny, mockAny).Return(func(_ context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
		*thisRun++
		m := sweep.EpochMetrics{Epoch: in.Epoch, ValLoss: 1 / float64(in.Epoch), ValAcc: 0.5, ImagesPS: 1000}
		out := TrainEpochOutput{Key: fmt.Sprintf("runs/x/cnn/smallcnn/16/epoch_%04d.json", in.Epoch), Attempt: 1,
			Progress: sweep.Progress{EpochsDone: in.Epoch, Metrics: []sweep.EpochMetrics{m}, BestEpoch: in.Epoch, BestValLoss: m.ValLoss, BestValAcc: m.ValAcc}}
		meter.note(in)
		meter.note(out)
		return out, nil
	})
	env.OnActivity(a.RecordResult, mockAny, mockAny).Return(func(_ context.Context, in RecordInput) (RecordOutput, error) {
		meter.note(in)
		return RecordOutput{}, nil
	})
}

// A 1,000-epoch combination continues as new every EpochsPerRun epochs:
// each run's history holds at most EpochsPerRun epochs (about 10 events
// each), and no payload grows with the epochs.
func TestThousandEpochCombinationStaysBounded(t *testing.T) {
	const epochs = 1000
	spec := testSpec(16)
	spec.Epochs = epochs
	in := CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}}
	var meter payloadMeter
	runs, total := 0, 0
	for {
		env := newEnv(t)
		thisRun := 0
		oneEpochFake(env, &meter, &thisRun)
		env.ExecuteWorkflow(Combination, in)
		runs++
		total += thisRun
		if thisRun > EpochsPerRun {
			t.Fatalf("run %d trained %d epochs, bound %d", runs, thisRun, EpochsPerRun)
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			in = CombinationInput{}
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			meter.note(in)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var o sweep.Outcome
		if err := env.GetWorkflowResult(&o); err != nil {
			t.Fatal(err)
		}
		meter.note(o)
		if o.Status != sweep.Completed || o.EpochsDone != epochs || o.BestEpoch != epochs || o.ImagesPerSec() != 1000 {
			t.Fatalf("outcome %s, %d epochs, best %d", o.Status, o.EpochsDone, o.BestEpoch)
		}
		break
	}
	if total != epochs || runs != epochs/EpochsPerRun {
		t.Errorf("%d epochs in %d runs, want %d in %d", total, runs, epochs, epochs/EpochsPerRun)
	}
	if meter.largest > 8<<10 {
		t.Errorf("largest payload %d bytes, bound 8 KiB", meter.largest)
	}
	t.Logf("%d runs, largest payload %d bytes", runs, meter.largest)
}

// A sweep of 500 combinations of 100 epochs keeps summaries (no per-epoch
// figures) of its running and latest ended combinations in its result,
// query and carried state, counts the rest, and continues as new every ContinueAsNewAfter finished children
// with children still running: they report their end by signal.
func TestLargeSweepStaysBounded(t *testing.T) {
	const combos, epochs = 500, 100
	spec := testSpec()
	spec.Models = []string{"smallcnn"}
	spec.Resolutions = nil
	for r := range combos {
		spec.Resolutions = append(spec.Resolutions, 8+r)
	}
	spec.Epochs, spec.MaxParallel = epochs, 8
	summary := func(c sweep.Combination) sweep.Outcome {
		last := sweep.EpochMetrics{Epoch: epochs, ValLoss: 0.3, ValAcc: 0.9, ImagesPS: 1000}
		return sweep.Outcome{
			Identity: sweep.Identity{Model: c.Model, Family: "cnn", Resolution: c.Resolution},
			Status:   sweep.Completed, Epochs: epochs, Progress: sweep.Progress{EpochsDone: epochs, BestEpoch: epochs, BestValLoss: 0.3, BestValAcc: 0.9},
			Course:   sweep.Course{Last: &last},
			Recorded: sweep.Recorded{Keys: sweep.Keys{Best: "runs/x/epoch_0100.json", Final: "runs/x/epoch_0100.json", Latest: "runs/x/epoch_0100.json"}},
		}
	}
	var meter payloadMeter
	in := SweepInput{Spec: spec}
	var p SweepProgress
	runs, maxChildrenPerRun := 0, 0
	for {
		env := newEnv(t)
		children := 0
		env.OnWorkflow(Combination, mockAny, mockAny).Return(func(ctx workflow.Context, ci CombinationInput) (sweep.Outcome, error) {
			children++
			meter.note(ci)
			if err := workflow.Sleep(ctx, time.Hour); err != nil {
				return sweep.Outcome{}, err
			}
			return summary(ci.Combination), nil
		})
		if in.Carry != nil {
			// Children of the previous run end and say so by signal.
			for k, i := range in.Carry.Running {
				o := summary(spec.Combinations()[i])
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalProgress, o) }, time.Duration(k+1)*time.Minute)
			}
		}
		env.RegisterDelayedCallback(func() {
			if v, err := env.QueryWorkflow(QueryProgress); err == nil {
				var q SweepProgress
				v.Get(&q)
				meter.note(q)
			}
		}, 30*time.Hour)
		env.ExecuteWorkflow(Sweep, in)
		runs++
		maxChildrenPerRun = max(maxChildrenPerRun, children)
		var can *workflow.ContinueAsNewError
		if err := env.GetWorkflowError(); errors.As(err, &can) {
			in = SweepInput{}
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			meter.note(in)
			if len(in.Carry.Running) == 0 {
				t.Errorf("run %d continued as new with no child running: the test does not cover the case", runs)
			}
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if err := env.GetWorkflowResult(&p); err != nil {
			t.Fatal(err)
		}
		meter.note(p)
		break
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.EpochsDone != epochs || len(o.Metrics) != 0 {
			t.Errorf("%s: %s, %d epochs, %d epochs' figures: want a completed summary", o.ID(), o.Status, o.EpochsDone, len(o.Metrics))
		}
	}
	if p.Total != combos || p.Counts[sweep.Completed] != combos || len(p.Combos) > listLatest+listProblems {
		t.Errorf("result: %d of %d combinations completed, %d rows listed", p.Counts[sweep.Completed], p.Total, len(p.Combos))
	}
	if runs < 3 || maxChildrenPerRun > spec.ContinueAsNewAfter+spec.MaxParallel {
		t.Errorf("%d runs, up to %d children per run", runs, maxChildrenPerRun)
	}
	// Temporal refuses payloads over 2 MB; the ledger stays far below.
	if meter.largest > 64<<10 {
		t.Errorf("largest payload %d bytes, bound 64 KiB", meter.largest)
	}
	t.Logf("%d runs, up to %d children per run, largest payload %d bytes", runs, maxChildrenPerRun, meter.largest)
}
