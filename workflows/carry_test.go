package workflows

import (
	"context"
	"fmt"
	"math"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/sweep"
)

// A training resumed from checkpoints of an earlier run counts what its
// earlier epochs cost, from their figures: its compute hours are the whole
// training's (a training found fully trained but unrecorded, healed here,
// had none: the report left it off the Pareto front).
func TestResumedTrainingsCountTheirEarlierEpochs(t *testing.T) {
	for _, c := range []struct {
		name        string
		found       int // epochs its checkpoints hold
		wantDevice  float64
		wantCarried int
		wantIPS     float64 // the summary's images/s: the mean over all epochs, as the full outcome's
	}{
		{"from scratch", 0, 3 * 7, 0, 1000},
		{"two epochs found", 2, 5 + 6 + 7, 2, 700},
		{"all found, never recorded", 3, 5 + 6 + 4, 3, 600}, // epoch 3's record predates device seconds: its wall
	} {
		t.Run(c.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			earlier := []sweep.EpochMetrics{
				{Epoch: 1, ValLoss: 0.9, ValAcc: 0.5, Seconds: 10, DeviceSeconds: 5, ImagesPS: 500},
				{Epoch: 2, ValLoss: 0.8, ValAcc: 0.6, Seconds: 10, DeviceSeconds: 6, ImagesPS: 600},
				{Epoch: 3, ValLoss: 0.7, ValAcc: 0.7, Seconds: 4, ImagesPS: 700},
			}[:c.found]
			rp := ResumePoint{}
			if c.found > 0 {
				key := fmt.Sprintf("runs/x/cnn/smallcnn/16/epoch_%04d.json", c.found)
				rp = ResumePoint{Key: key, BestKey: key, Progress: sweep.Progress{EpochsDone: c.found, Metrics: earlier,
					BestEpoch: c.found, BestValLoss: earlier[c.found-1].ValLoss, BestValAcc: earlier[c.found-1].ValAcc}}
			}
			mockTrainingSetup(env, func(sweep.Config, sweep.Combination) string { return hashOf(16) }, func(Prepared) ResumePoint { return rp })
			env.OnActivity(a.EvaluateAtResolutions, mockAny, mockAny).Return(EvaluateOutput{}, nil)
			env.OnActivity(a.TrainEpoch, mockAny, mockAny).Return(func(_ context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
				m := sweep.EpochMetrics{Epoch: in.Epoch, ValLoss: 1 / float64(in.Epoch), ValAcc: 0.8, Seconds: 8, DeviceSeconds: 7, ImagesPS: 1000}
				key := fmt.Sprintf("runs/x/cnn/smallcnn/16/epoch_%04d.json", in.Epoch)
				return TrainEpochOutput{Key: key, BestKey: key, Attempt: 1, TrainSeconds: 7.5, EvalSeconds: 0.5, DeviceSeconds: 7,
					Progress: sweep.Progress{EpochsDone: in.Epoch, Metrics: []sweep.EpochMetrics{m}, BestEpoch: in.Epoch, BestValLoss: m.ValLoss, BestValAcc: m.ValAcc}}, nil
			})
			var recorded sweep.Outcome
			env.OnActivity(a.RecordResult, mockAny, mockAny).Return(func(_ context.Context, in RecordInput) (RecordOutput, error) {
				recorded = in.Outcome
				return RecordOutput{}, nil
			})
			spec := testSpec(16)
			spec.Epochs = 3
			env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
			var out sweep.Outcome
			if err := env.GetWorkflowResult(&out); err != nil || out.Status != sweep.Completed {
				t.Fatalf("%v %+v", err, out)
			}
			for _, o := range []sweep.Outcome{out, recorded} {
				if math.Abs(o.DeviceSeconds-c.wantDevice) > 1e-9 || o.CarriedEpochs != c.wantCarried || o.EpochRuns != 3 {
					t.Errorf("device seconds %.1f (want %.1f), carried epochs %d (want %d), epoch runs %d (want 3)",
						o.DeviceSeconds, c.wantDevice, o.CarriedEpochs, c.wantCarried, o.EpochRuns)
				}
				if o.Metrics == nil && math.Abs(o.ImagesPerSec()-c.wantIPS) > 1e-9 {
					t.Errorf("the summary's images/s %.1f, want the mean over the epochs %.1f", o.ImagesPerSec(), c.wantIPS)
				}
				if o.ComputeHours() <= 0 || o.WallSeconds < o.CarriedSeconds {
					t.Errorf("compute hours %v, wall %.1f s with %.1f s carried", o.ComputeHours(), o.WallSeconds, o.CarriedSeconds)
				}
			}
		})
	}
}
