package tracking_test

import (
	"context"
	"slices"
	"testing"

	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/tracking/mlflowtest"
)

// A finished training's run gets its dataset input once and its model one
// registered version with the alias on it, however often it syncs; versions
// a racing sync made for the same run are removed, the lowest kept.
func TestRegistrationIsOnePerRun(t *testing.T) {
	s := mlflowtest.New()
	defer s.Close()
	c := client(t, s, tracking.Credentials{})
	ctx := context.Background()
	tr := training(2, 2, tracking.StatusFinished)
	tr.End = 9000
	tr.Artifacts = []tracking.Artifact{artifact("best_model/best_model.json", `{"a":1}`)}
	tr.Inputs = []tracking.DatasetInput{{Tags: []tracking.Tag{{Key: "mlflow.data.context", Value: "training"}},
		Dataset: tracking.Dataset{Name: "fashion-mnist", Digest: "0123abcd", SourceType: "local", Source: `{"uri": "fashion-mnist"}`}}}
	name := tracking.RegisteredModelName("my sweep's-script:net.v2")
	if name != "my_sweep_s-script_net_v2-"+name[len(name)-6:] || tracking.RegisteredModelName("exp.1") == tracking.RegisteredModelName("exp_1") ||
		tracking.RegisteredModelName("exp_1") != "exp_1" {
		t.Fatalf("registered name %q", name)
	}
	tr.Register = &tracking.Registration{Model: name, Folder: "best_model", Alias: "res32_seed1"}
	first, err := c.SyncTraining(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	s.AddModelVersion(name, first.RunID) // two racing syncs' versions
	s.AddModelVersion(name, first.RunID)
	for range 2 {
		again, err := c.SyncTraining(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		if again.Version != first.Version || again.InputsSent != 0 {
			t.Fatalf("sync again: version %s (first %s), %d inputs sent", again.Version, first.Version, again.InputsSent)
		}
	}
	if n, aliasRun := s.ModelVersions(name, "res32_seed1"); n != 1 || aliasRun != first.RunID {
		t.Fatalf("%d versions, alias on run %q; want 1, on %s", n, aliasRun, first.RunID)
	}
	if in := s.DatasetInputs(first.RunID); len(in) != 1 {
		t.Fatalf("dataset inputs %+v", in)
	}
	checkNoUnexpected(t, s)
}

// A server without dataset inputs or a model registry (an older MLflow)
// still gets the whole run, FINISHED; the sync names what it left out.
func TestRunsCompleteOnServersWithoutInputsOrRegistry(t *testing.T) {
	s := mlflowtest.New()
	defer s.Close()
	s.Lacks("runs/log-inputs", "registered-models/create")
	c := client(t, s, tracking.Credentials{})
	tr := training(2, 2, tracking.StatusFinished)
	tr.End = 9000
	tr.Inputs = []tracking.DatasetInput{{Dataset: tracking.Dataset{Name: "d", Digest: "1", SourceType: "local", Source: "{}"}}}
	tr.Register = &tracking.Registration{Model: "m", Folder: "best_model", Alias: "a"}
	got, err := c.SyncTraining(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Unsupported, []string{"dataset inputs", "the model registry"}) {
		t.Errorf("left out %v", got.Unsupported)
	}
	for _, r := range s.Runs() {
		if r.ID == got.RunID && r.Status != tracking.StatusFinished {
			t.Errorf("run %s: %s, want FINISHED", r.ID, r.Status)
		}
	}
}
