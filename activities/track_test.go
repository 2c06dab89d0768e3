package activities_test

import (
	"errors"
	"fmt"
	"github.com/resomap/resomap/internal/gpustat"
	"github.com/resomap/resomap/internal/gpustat/fakenvml"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/tracking/mlflowtest"
	"github.com/resomap/resomap/workflows"
)

// A training's run on the tracking server follows what the store holds:
// after each epoch, and as often as a sync repeats, each epoch's figures
// once, at the time stored with them; when it completes, FINISHED with
// the best model attached. A config whose run is FINISHED is found again.
func TestTrackTrainingFollowsTheStore(t *testing.T) {
	acts, p, env := setup(t)
	nvml, err := gpustat.Open(fakenvml.Build(t)) // two GPUs, GPU 1 without utilisation or power readings
	if err != nil {
		t.Fatal(err)
	}
	acts.Engine.Trainer.GPUStats = nvml
	srv := mlflowtest.New()
	defer srv.Close()
	ts := sweep.TrackingSettings{URI: srv.URL, Experiment: "act", LogModels: true}
	started := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	o := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Family: p.Family, Resolution: 16, ConfigHash: p.ConfigHash}, Epochs: 2, Status: sweep.Running}
	sync := func() workflows.TrackOutput {
		t.Helper()
		v, err := env.ExecuteActivity(acts.TrackTraining, workflows.TrackInput{Sweep: "act", SweepID: "sweep-act",
			WorkflowID: "sweep-act/smallcnn@16", Tracking: ts, Prepared: p, Outcome: o, Started: started})
		if err != nil {
			t.Fatal(err)
		}
		var out workflows.TrackOutput
		v.Get(&out)
		return out
	}
	sync() // prepared, no epoch yet: the run exists, RUNNING
	for epoch := 1; epoch <= 2; epoch++ {
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.TrainEpochOutput
		v.Get(&res)
		o.Progress, o.Keys.Latest, o.Keys.Best = res.Progress, res.Key, res.BestKey
		o.Summarise()
		for range 2 {
			if out := sync(); out.Epochs != epoch {
				t.Fatalf("after epoch %d the run has %d", epoch, out.Epochs)
			}
		}
	}
	o.Status, o.FinishedAt = sweep.Completed, started.Add(time.Hour)
	o.TestResults = []sweep.TestResult{{Resolution: 16, ValAcc: 0.5, ValLoss: 1.2, Images: 128}, {Resolution: 20, Skipped: "upsampling"}}
	out := sync()
	sync()
	runs := srv.Runs()
	if len(runs) != 2 {
		t.Fatalf("%d runs, want the sweep's and the training's", len(runs))
	}
	run := runs[0]
	if run.Tags[tracking.TagKind] != "training" {
		run = runs[1]
	}
	if run.ID != out.RunID || run.Status != tracking.StatusFinished || run.End != o.FinishedAt.UnixMilli() {
		t.Errorf("run %s: %s ending %d, want %s FINISHED ending %d", run.ID, run.Status, run.End, out.RunID, o.FinishedAt.UnixMilli())
	}
	for _, k := range []string{"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s", "epoch_seconds",
		"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes", "system/system_memory_usage_percentage",
		"system/gpu_0_utilization_percentage", "system/gpu_0_memory_usage_megabytes", "system/gpu_0_memory_usage_percentage",
		"system/gpu_0_power_usage_watts", "system/gpu_0_power_usage_percentage",
		"system/gpu_1_memory_usage_megabytes", "system/gpu_1_memory_usage_percentage"} {
		if got := fmt.Sprint(run.Steps(k)); got != "[1 2]" {
			t.Errorf("%s: steps %s, want [1 2]", k, got)
		}
	}
	for _, k := range []string{"system/gpu_1_power_usage_watts", "system/gpu_1_utilization_percentage"} {
		if pts := run.Metrics[k]; len(pts) != 0 {
			t.Errorf("GPU 1 reads no %s, yet the run shows %v", k, pts)
		}
	}
	if pts := run.Metrics["system/gpu_1_memory_usage_megabytes"]; len(pts) == 2 && pts[1].Value != 40000 {
		t.Errorf("GPU 1's memory %v MB, want 40000", pts[1].Value)
	}
	if pts := run.Metrics["val_acc"]; len(pts) == 2 && (pts[0].Timestamp <= started.UnixMilli() || pts[0].Timestamp >= pts[1].Timestamp) {
		t.Errorf("val_acc timestamps %d, %d: want the times the epochs ended", pts[0].Timestamp, pts[1].Timestamp)
	}
	if len(run.Metrics["test_acc_16px"]) != 1 || len(run.Metrics["test_acc_20px"]) != 0 {
		t.Errorf("test-resolution figures %v", run.Metrics)
	}
	if run.Params["model"] != "smallcnn" || run.Params["lr"] != "0.05" || run.Params["data_hash"] != p.Config.DataHash ||
		run.Tags["config_hash"] != p.ConfigHash || run.Tags["resolution"] != "16" || run.Tags[tracking.TagWorkflowID] != "sweep-act/smallcnn@16" {
		t.Errorf("params %v tags %v", run.Params, run.Tags)
	}
	if run.Artifacts["best_model/best_model.safetensors"] == 0 || run.Artifacts["best_model/best_model.json"] == 0 {
		t.Errorf("artifacts %v", run.Artifacts)
	}
	if n := srv.Calls("artifacts/put"); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}
	// One dataset input, digested by the data's hash; MLflow's source
	// tags; the best model registered once (however often the sync ran),
	// with the training's alias pointing at it.
	inputs := srv.DatasetInputs(run.ID)
	if len(inputs) != 1 || inputs[0].Name != p.Config.Data || inputs[0].Context != "training" ||
		inputs[0].Digest != p.Config.DataHash[:min(36, len(p.Config.DataHash))] {
		t.Errorf("dataset inputs %+v, want one of %s digested %.36s", inputs, p.Config.Data, p.Config.DataHash)
	}
	if run.Tags["mlflow.source.type"] != "JOB" || run.Tags["mlflow.source.name"] == "" {
		t.Errorf("source tags %v", run.Tags)
	}
	if versions, aliasRun := srv.ModelVersions("act-smallcnn", "res16_seed"+fmt.Sprint(p.Config.Seed)); versions != 1 || aliasRun != run.ID {
		t.Errorf("registry: %d versions of act-smallcnn, alias on run %q; want 1, on %s", versions, aliasRun, run.ID)
	}

	v, err := env.ExecuteActivity(acts.FindTracked, workflows.FindTrackedInput{Tracking: ts, Sweep: "act", ConfigHash: p.ConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	var found workflows.LookupOutput
	v.Get(&found)
	if !found.Found || found.Outcome.TrackingRun != out.RunID || found.Outcome.EpochsDone != 2 || found.Outcome.BestValAcc == 0 {
		t.Errorf("FindTracked: %+v", found)
	}
	if u := srv.Unexpected(); len(u) > 0 {
		t.Errorf("calls outside the API: %v", u)
	}
}

// The sweep's catch-up syncs the runs the sweep names as behind; when it
// names only some (its ledger keeps a bounded list), it syncs every ended
// training of the sweep in the store: not an outcome stored under the
// sweep's name for a combination it no longer has, nor one trained with a
// config it no longer has (both are passed over, not retried for days).
func TestTrackSweepCatchesUpFromTheStore(t *testing.T) {
	for _, fromStore := range []bool{false, true} {
		acts, p, env := setup(t)
		srv := mlflowtest.New()
		ts := sweep.TrackingSettings{URI: srv.URL, Experiment: "act"}
		spec := actSpec("fashion-mnist")
		spec.Tracking = ts
		spec.Tracking.LogReport = fromStore // and the report folder on the sweep's run
		spec.Resolutions = []int{16, 24}
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.TrainEpochOutput
		v.Get(&res)
		o := sweep.Outcome{
			Identity: sweep.Identity{Model: "smallcnn", Family: p.Family, Resolution: 16, ConfigHash: p.ConfigHash},
			Epochs:   2, Status: sweep.Failed, Progress: res.Progress, Reason: "stopped",
			Recorded: sweep.Recorded{Keys: sweep.Keys{Latest: res.Key, Best: res.BestKey}},
		}
		o.Summarise()
		idx := results.Index{Store: acts.Store}
		if err := idx.PutOutcome(t.Context(), spec.Name, o); err != nil {
			t.Fatal(err)
		}
		gone, changed := o, o
		gone.Resolution = 32                                       // no longer in the sweep
		changed.Resolution, changed.ConfigHash = 24, hashOf("old") // trained with other settings
		for _, x := range []sweep.Outcome{gone, changed} {
			if err := idx.PutOutcome(t.Context(), spec.Name, x); err != nil {
				t.Fatal(err)
			}
		}
		_, err = env.ExecuteActivity(acts.TrackSweep, workflows.TrackSweepInput{Spec: spec, SweepID: "sweep-act", FromStore: fromStore,
			Status: "completed", Started: time.Now().Add(-time.Hour), Ended: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		trainings := 0
		for _, r := range srv.Runs() {
			if r.Tags[tracking.TagKind] == "training" {
				trainings++
			} else if got := r.Artifacts["report/index.html"] > 0 && r.Artifacts["report/results.csv"] > 0; got != fromStore {
				t.Errorf("log_report %v: the sweep's run has the report: %v (artifacts %v)", fromStore, got, r.Artifacts)
			}
		}
		if want := map[bool]int{false: 0, true: 1}[fromStore]; trainings != want {
			t.Errorf("from the store: %v; %d training runs, want %d", fromStore, trainings, want)
		}
		srv.Close()
	}
}

// A server that refuses for good fails the attempt as ErrTypeTracking
// (not retried); one that fails may pass, so it is retried.
func TestTrackTrainingErrors(t *testing.T) {
	acts, p, env := setup(t)
	srv := mlflowtest.New()
	defer srv.Close()
	in := workflows.TrackInput{Sweep: "act", SweepID: "sweep-act", Tracking: sweep.TrackingSettings{URI: srv.URL},
		Prepared: p, Outcome: sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16}, Status: sweep.Running}}
	srv.RequireToken("secret")
	_, err := env.ExecuteActivity(acts.TrackTraining, in)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeTracking || !appErr.NonRetryable() {
		t.Errorf("bad credentials: %v, want a non-retryable %s", err, workflows.ErrTypeTracking)
	}
	srv.RequireToken("")
	srv.FailWith(502)
	_, err = env.ExecuteActivity(acts.TrackTraining, in)
	if err == nil || errors.As(err, &appErr) && appErr.NonRetryable() {
		t.Errorf("a 502: %v, want an error that is retried", err)
	}
}

func hashOf(s string) string { return fmt.Sprintf("%064x", len(s)) }

// A training's MLflow params show where its weights and script came from,
// never a credential: a URL's user information and a presigned URL's
// signature are elided (the config's hash still names the content).
func TestTrackedParamsHoldNoCredentials(t *testing.T) {
	acts, p, env := setup(t)
	srv := mlflowtest.New()
	defer srv.Close()
	p.Config.Init = &sweep.Init{Weights: "https://user:hunter2@models.example.com/w.pth?X-Amz-Signature=s3cr3t", SHA256: "sha256:00"}
	p.Config.Script = &sweep.Script{File: "https://me:t0ken@models.example.com/net.pt", SHA256: "sha256:00"}
	in := workflows.TrackInput{Sweep: "act", SweepID: "sweep-act", Tracking: sweep.TrackingSettings{URI: srv.URL},
		Prepared: p, Outcome: sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16}, Status: sweep.Running}}
	if _, err := env.ExecuteActivity(acts.TrackTraining, in); err != nil {
		t.Fatal(err)
	}
	shown := 0
	for _, r := range srv.Runs() {
		for k, v := range r.Params {
			if strings.Contains(v, "hunter2") || strings.Contains(v, "s3cr3t") || strings.Contains(v, "t0ken") {
				t.Errorf("param %s = %q holds a credential", k, v)
			}
			if strings.Contains(v, "models.example.com") {
				shown++
			}
		}
	}
	if shown < 2 {
		t.Errorf("%d params name the weights' and the script's host, want both shown", shown)
	}
}
