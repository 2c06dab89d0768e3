package tracking_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/resomap/resomap/tracking"
)

// realServer is the MLflow tracking server RESOMAP_TEST_MLFLOW_URI names;
// the test is skipped, saying so, without one.
func realServer(t *testing.T) *tracking.Client {
	t.Helper()
	uri := os.Getenv("RESOMAP_TEST_MLFLOW_URI")
	if uri == "" {
		t.Skip("RESOMAP_TEST_MLFLOW_URI is not set: no real MLflow server to test against (the Go test server's tests ran)")
	}
	c, err := tracking.New(uri, tracking.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The same exactly-once sync, with racing creators, against a real server.
func TestRealServerSync(t *testing.T) {
	c := realServer(t)
	ctx := context.Background()
	tr := training(3, 3, tracking.StatusRunning)
	unique := fmt.Sprint(time.Now().UnixNano())
	tr.Sweep.Experiment = "resomap-tracking-test-" + unique
	tr.Sweep.WorkflowID += unique
	tr.ConfigHash += unique
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.SyncTraining(ctx, tr); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	tr.Status, tr.End = tracking.StatusFinished, 9000
	tr.Artifacts = []tracking.Artifact{artifact("best_model/best_model.json", `{"a":1}`)}
	tr.Inputs = []tracking.DatasetInput{{Tags: []tracking.Tag{{Key: "mlflow.data.context", Value: "training"}},
		Dataset: tracking.Dataset{Name: "fashion-mnist", Digest: "0123456789abcdef0123456789abcdef0123", SourceType: "local", Source: `{"uri": "fashion-mnist"}`}}}
	tr.Register = &tracking.Registration{Model: "resomap-test-" + unique, Folder: "best_model", Alias: "res32_seed1"}
	s, err := c.SyncTraining(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncTraining(ctx, tr); err != nil {
		t.Fatal(err)
	}
	runs, err := c.SearchRuns(ctx, s.ExperimentID, "tags.`"+tracking.TagConfigHash+"` = '"+tr.ConfigHash+"'")
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs of the config: %d (%v), want 1", len(runs), err)
	}
	for _, k := range []string{"val_acc", "train_loss"} {
		h, err := c.History(ctx, s.RunID, k)
		if err != nil || len(h) != 3 {
			t.Errorf("%s: %d points (%v), want 3", k, len(h), err)
		}
	}
	f, err := c.FindFinished(ctx, tr.Sweep.Experiment, tr.ConfigHash, "val_acc")
	if err != nil || f == nil || f.RunID != s.RunID {
		t.Errorf("finished run: %+v %v", f, err)
	}
	sizes, err := c.ArtifactSizes(ctx, s.RunID, "best_model")
	if err != nil || sizes["best_model/best_model.json"] != 7 {
		t.Errorf("artifacts %v %v", sizes, err)
	}
	// Two syncs: one dataset input, one model version, the alias on it.
	run, err := c.GetRun(ctx, s.RunID)
	if err != nil || len(run.Inputs.DatasetInputs) != 1 || run.Inputs.DatasetInputs[0].Context() != "training" {
		t.Errorf("dataset inputs %+v (%v), want one", run.Inputs, err)
	}
	versions, err := c.RunModelVersions(ctx, tr.Register.Model, s.RunID)
	if err != nil || len(versions) != 1 {
		t.Fatalf("versions of the run: %+v (%v), want one", versions, err)
	}
	v, err := c.AliasVersion(ctx, tr.Register.Model, tr.Register.Alias)
	if err != nil || v.Version != versions[0].Version || v.RunID != s.RunID {
		t.Errorf("alias: %+v (%v), want version %s of run %s", v, err, versions[0].Version, s.RunID)
	}
}
