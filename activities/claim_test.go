package activities_test

import (
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/resomap/resomap/workflows"
)

// One combination workflow at a time may train a config: a second is
// refused while the first runs, the first may claim again (a retry), and a
// claim whose holder no longer runs is taken over.
func TestClaimTraining(t *testing.T) {
	acts, p, env := setup(t)
	claim := func(owner string) workflows.ClaimOutput {
		t.Helper()
		v, err := env.ExecuteActivity(acts.ClaimTraining, workflows.ClaimInput{ConfigHash: p.ConfigHash, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		var out workflows.ClaimOutput
		v.Get(&out)
		return out
	}
	if out := claim("sweep-a/smallcnn@16"); !out.Granted {
		t.Fatalf("first claim refused: %+v", out)
	}
	if out := claim("sweep-b/smallcnn@16"); out.Granted || out.Holder != "sweep-a/smallcnn@16" {
		t.Fatalf("second claim while the first runs: %+v", out)
	}
	if out := claim("sweep-a/smallcnn@16"); !out.Granted {
		t.Fatalf("the holder's own claim again: %+v", out)
	}
	acts.Temporal = confirmer{err: serviceerror.NewNotFound("no such workflow")}
	if out := claim("sweep-b/smallcnn@16"); !out.Granted {
		t.Fatalf("claim of a holder that no longer runs: %+v", out)
	}
	acts.Temporal = nil
	if out := claim("sweep-a/smallcnn@16"); out.Granted || out.Holder != "sweep-b/smallcnn@16" {
		t.Fatalf("after the take-over: %+v", out)
	}
}
