package activities_test

import (
	"testing"
	"time"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
	"go.temporal.io/sdk/testsuite"
)

// A completed training's best checkpoint evaluated at test resolutions:
// at its own resolution exactly the accuracy its training recorded, one
// result per test resolution, and a second call evaluates nothing again.
func TestEvaluateAtResolutionsOnceEach(t *testing.T) {
	acts, p, env := setup(t)
	var last workflows.TrainEpochOutput
	for e := 1; e <= 2; e++ {
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: e})
		if err != nil {
			t.Fatal(err)
		}
		v.Get(&last)
	}
	in := workflows.EvaluateInput{Prepared: p, BestKey: last.BestKey, Resolutions: []int{12, 16, 20}}
	var out workflows.EvaluateOutput
	v, err := env.ExecuteActivity(acts.EvaluateAtResolutions, in)
	if err != nil {
		t.Fatal(err)
	}
	v.Get(&out)
	if len(out.Results) != 3 || out.Evaluated != 3 {
		t.Fatalf("%+v", out)
	}
	if own := out.Results[1]; own.Resolution != 16 || own.ValAcc != last.Progress.BestValAcc || own.Images != 128 {
		t.Fatalf("at 16 px %+v; training's best accuracy %v", own, last.Progress.BestValAcc)
	}
	v, err = env.ExecuteActivity(acts.EvaluateAtResolutions, in)
	if err != nil {
		t.Fatal(err)
	}
	var again workflows.EvaluateOutput
	v.Get(&again)
	if again.Evaluated != 0 || len(again.Results) != 3 || again.Results[2] != out.Results[2] {
		t.Fatalf("second call: %+v", again)
	}
}

// Evaluation at test resolutions heartbeats while it evaluates, not only
// while it builds caches: with a 3 s heartbeat timeout (enforced by the
// SDK's test server) an evaluation of several seconds per size times out
// nowhere, and each size is evaluated once.
func TestEvaluationHeartbeatsWhileItEvaluates(t *testing.T) {
	testfixture.Long(t, "evaluates a resnet18 at 160 px")
	acts, _, aenv := setup(t)
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs = "eval", []string{"resnet18"}, []int{32}, 1
	spec.TrainLimit, spec.ValLimit, spec.AllowUpsampling = 256, 3000, true
	v, err := aenv.ExecuteActivity(acts.Prepare, workflows.PrepareInput{Spec: spec, Combination: sweep.Combination{Model: "resnet18", Resolution: 32}})
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.Prepared
	v.Get(&p)
	if v, err = aenv.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	var trained workflows.TrainEpochOutput
	v.Get(&trained)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(acts)
	env.RegisterWorkflow(onceWithHeartbeat)
	env.SetTestTimeout(10 * time.Minute)
	in := workflows.EvaluateInput{Prepared: p, BestKey: trained.BestKey, Resolutions: []int{32, 160}, AllowUpsampling: true}
	started := time.Now()
	env.ExecuteWorkflow(onceWithHeartbeat, workflows.ActivityEvaluateAt, 3*time.Second, in)
	var out workflows.EvaluateOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatalf("evaluation with a 3 s heartbeat timeout: %v", err)
	}
	if out.Evaluated != 2 || len(out.Results) != 2 {
		t.Fatalf("evaluated %d of %d sizes, want each once", out.Evaluated, len(out.Results))
	}
	t.Logf("resnet18 at 32 and 160 px over %d images in %v", out.Results[1].Images, time.Since(started))
}

// A size skipped because one sweep does not allow upsampling is evaluated
// for a sweep that does: the verdict is the sweep's, not the training's
// (it was stored under the training's hash and reused by every sweep).
func TestSkippedVerdictIsTheSweeps(t *testing.T) {
	acts, p, env := setup(t)
	v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	var last workflows.TrainEpochOutput
	v.Get(&last)
	up := 2 * 28 // twice Fashion-MNIST's native size
	for _, allow := range []bool{false, true, false} {
		in := workflows.EvaluateInput{Prepared: p, BestKey: last.BestKey, Resolutions: []int{16, up}, AllowUpsampling: allow}
		v, err := env.ExecuteActivity(acts.EvaluateAtResolutions, in)
		if err != nil {
			t.Fatal(err)
		}
		var out workflows.EvaluateOutput
		v.Get(&out)
		got := out.Results[1]
		if allow != (got.Skipped == "") || allow && got.Images == 0 {
			t.Errorf("allow_upsampling %v: at %d px %+v", allow, up, got)
		}
	}
}
