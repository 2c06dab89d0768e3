package workflows

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Workflows call activities by name: each name must be a method of the
// contract, or the call fails at run time ("activity not registered").
func TestEveryActivityNameIsAMethodOfTheContract(t *testing.T) {
	api := reflect.TypeFor[ActivityAPI]()
	names := []string{ActivityPrepare, ActivityLookupResult, ActivityFindResumePoint, ActivityTrainEpoch,
		ActivityRecordResult, ActivityClaimTraining, ActivityEvaluateAt, ActivityDescribeChildren,
		ActivityTrackTraining, ActivityTrackSweep, ActivityFindTracked}
	named := map[string]bool{}
	for _, n := range names {
		if _, ok := api.MethodByName(n); !ok {
			t.Errorf("activity name %q is no method of ActivityAPI", n)
		}
		named[n] = true
	}
	for i := range api.NumMethod() {
		if m := api.Method(i).Name; !named[m] {
			t.Errorf("ActivityAPI.%s has no name constant", m)
		}
	}
}

// Histories recorded before Progress was embedded hold resume points with
// Go field names; they must decode to the same point, or a replay would
// take another path.
func TestResumePointReadsTheRecordedShape(t *testing.T) {
	recorded := `{"Key":"runs/x/cnn/smallcnn/16/mid_e0003_s000040.json","EpochsDone":2,"Step":40,
		"Metrics":[{"epoch":1,"val_acc":0.5},{"epoch":2,"val_acc":0.6}],"BestEpoch":2,"BestValLoss":0.9,"BestValAcc":0.6,"Problems":null}`
	var old ResumePoint
	if err := json.Unmarshal([]byte(recorded), &old); err != nil {
		t.Fatal(err)
	}
	if old.Key == "" || old.Step != 40 || old.EpochsDone != 2 || len(old.Metrics) != 2 || old.BestEpoch != 2 || old.BestValAcc != 0.6 || old.BestValLoss != 0.9 {
		t.Fatalf("recorded shape decoded as %+v", old)
	}
	b, _ := json.Marshal(old)
	var now ResumePoint
	if err := json.Unmarshal(b, &now); err != nil {
		t.Fatal(err)
	}
	if now.EpochsDone != 2 || now.Step != 40 || len(now.Metrics) != 2 || now.BestEpoch != 2 {
		t.Fatalf("current shape round trip: %+v", now)
	}
}
