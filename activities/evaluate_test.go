package activities_test

import (
	"testing"

	"github.com/resomap/resomap/workflows"
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
