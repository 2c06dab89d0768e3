package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/sweep"
)

// mockTrainingSetup mocks what comes before a combination's epochs:
// Prepare (the config hash hash gives), no recorded result, the claim
// granted, and the resume point resume gives (nil: from the start). The
// caller mocks the epochs and what follows them.
func mockTrainingSetup(env *testsuite.TestWorkflowEnvironment, hash func(sweep.Config, sweep.Combination) string, resume func(Prepared) ResumePoint) {
	env.OnActivity(a.Prepare, mockAny, mockAny).Return(func(_ context.Context, in PrepareInput) (Prepared, error) {
		cfg := in.Spec.Config(in.Combination)
		return Prepared{Config: cfg, ConfigHash: hash(cfg, in.Combination), Family: "cnn", Prefix: "runs/x"}, nil
	})
	env.OnActivity(a.LookupResult, mockAny, mockAny).Return(LookupOutput{}, nil)
	env.OnActivity(a.ClaimTraining, mockAny, mockAny).Return(ClaimOutput{Granted: true}, nil)
	env.OnActivity(a.FindResumePoint, mockAny, mockAny).Return(func(_ context.Context, p Prepared) (ResumePoint, error) {
		if resume == nil {
			return ResumePoint{}, nil
		}
		return resume(p), nil
	})
}

// hashByResolution names a combination's config by its resolution.
func hashByResolution(_ sweep.Config, c sweep.Combination) string { return hashOf(c.Resolution) }

// freshTrainingEnv runs a combination with no result, checkpoint or claim
// of another: every epoch is TrainEpoch's, which the caller mocks.
func freshTrainingEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	mockTrainingSetup(env, hashByResolution, nil)
	env.OnActivity(a.RecordResult, mockAny, mockAny).Return(RecordOutput{}, nil)
	return env
}

// An epoch goes first to the queue of the worker that ran the epoch before
// (its model is resident there); when that worker is busy, gone (its queue
// not served in time) or dies mid-epoch, the epoch goes to the shared
// queue.
func TestEpochsGoToTheirWorkerFirst(t *testing.T) {
	env := freshTrainingEnv()
	type call struct {
		epoch int
		queue string
	}
	var calls []call
	const own = "resomap@worker-a"
	env.OnActivity(a.TrainEpoch, mockAny, mockAny).Return(func(ctx context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
		q := activity.GetInfo(ctx).TaskQueue
		calls = append(calls, call{in.Epoch, q})
		if q == own && in.Epoch == 3 {
			return TrainEpochOutput{}, temporal.NewNonRetryableApplicationError("slots taken", ErrTypeWorkerBusy, nil)
		}
		if q == own && in.Epoch == 4 {
			return TrainEpochOutput{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		if q == own && in.Epoch == 5 { // the worker died mid-epoch, its last heartbeat 3 minutes ago
			return TrainEpochOutput{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil, Heartbeat{Done: 7, Of: 10, At: env.Now().Add(-3 * time.Minute)})
		}
		m := sweep.EpochMetrics{Epoch: in.Epoch, ValLoss: 1 / float64(in.Epoch), ValAcc: 0.5, ImagesPS: 1000}
		numerics, others := []string{"worker a's arithmetic"}, 0.05
		if q != own {
			numerics, others = []string{"another worker's arithmetic"}, 0.6 // a host shared with other processes
		}
		return TrainEpochOutput{Key: fmt.Sprintf("runs/x/cnn/smallcnn/16/epoch_%04d.json", in.Epoch), Attempt: 1, WorkerQueue: own, Numerics: numerics, HostOthers: others,
			Progress: sweep.Progress{EpochsDone: in.Epoch, Metrics: []sweep.EpochMetrics{m}, BestEpoch: in.Epoch, BestValLoss: m.ValLoss, BestValAcc: m.ValAcc}}, nil
	})
	spec := testSpec(16)
	spec.Epochs = 6
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var out sweep.Outcome
	if err := env.GetWorkflowResult(&out); err != nil || out.Status != sweep.Completed {
		t.Fatalf("%v %+v", err, out)
	}
	shared := calls[0].queue
	want := []call{{1, shared}, {2, own}, {3, own}, {3, shared}, {4, own}, {4, shared}, {5, own}, {5, shared}, {6, own}}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("epochs went to\n%v\nwant\n%v", calls, want)
	}
	if shared == own {
		t.Fatal("first epoch on the worker's own queue")
	}
	// Epochs 1, 3, 4 and 5 ran on the shared queue's host, busy with others.
	if out.ContendedEpochs != 4 || out.HostOthers != 0.6 {
		t.Errorf("%d epochs on a shared host (up to %.2f), want 4 (0.6)", out.ContendedEpochs, out.HostOthers)
	}
	// The lost worker's downtime since its last heartbeat is waiting.
	if out.WaitSeconds < 180 {
		t.Errorf("waiting %.0f s, want the 180 s since the lost worker's last heartbeat", out.WaitSeconds)
	}
	// Its epochs ran on two workers: the outcome names both arithmetics,
	// in the order first met.
	if fmt.Sprint(out.Numerics) != "[another worker's arithmetic worker a's arithmetic]" || !out.MixedNumerics() {
		t.Errorf("numerics %q", out.Numerics)
	}
}

// An epoch that waits for its worker's own queue in vain (not taken
// within StickySeconds) counts that wait as waiting, not as the training's
// fixed cost ("other").
func TestAStickyWaitInVainIsWaiting(t *testing.T) {
	env := freshTrainingEnv()
	const own = "resomap@worker-a"
	spec := testSpec(16)
	spec.Epochs = 3
	sticky := time.Duration(spec.Activity.StickySeconds) * time.Second
	// Every attempt takes the sticky wait of the test clock: on the
	// worker's own queue it then times out (nobody took it).
	env.OnActivity(a.TrainEpoch, mockAny, mockAny).After(sticky).Return(func(ctx context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
		if activity.GetInfo(ctx).TaskQueue == own {
			return TrainEpochOutput{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		m := sweep.EpochMetrics{Epoch: in.Epoch, ValLoss: 1, ValAcc: 0.5, ImagesPS: 1000}
		return TrainEpochOutput{Key: fmt.Sprintf("runs/x/cnn/smallcnn/16/epoch_%04d.json", in.Epoch), Attempt: 1, WorkerQueue: own,
			TrainSeconds: sticky.Seconds(), Progress: sweep.Progress{EpochsDone: in.Epoch, Metrics: []sweep.EpochMetrics{m}, BestEpoch: in.Epoch}}, nil
	})
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var out sweep.Outcome
	if err := env.GetWorkflowResult(&out); err != nil || out.Status != sweep.Completed {
		t.Fatalf("%v %+v", err, out)
	}
	// Epochs 2 and 3 each waited for the own queue in vain.
	if want := 2 * sticky.Seconds(); out.WaitSeconds < want || out.WaitSeconds > want+1 {
		t.Errorf("waiting %.1f s, want the %.0f s spent on the worker's own queue in vain", out.WaitSeconds, want)
	}
}
