package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/tracking/mlflowtest"
)

// mlflowServer is the tracking server a test logs to: the real one that
// RESOMAP_TEST_MLFLOW_URI names, else the Go test server (whose outages
// the test can cause; nil test server with a real one).
func mlflowServer(t *testing.T) (uri string, fake *mlflowtest.Server) {
	t.Helper()
	if uri := os.Getenv("RESOMAP_TEST_MLFLOW_URI"); uri != "" {
		t.Logf("logging to the real MLflow server at %s", uri)
		return uri, nil
	}
	t.Log("RESOMAP_TEST_MLFLOW_URI is not set: logging to the Go test server (mlflowtest)")
	fake = mlflowtest.New()
	t.Cleanup(func() {
		if u := fake.Unexpected(); len(u) > 0 {
			t.Errorf("calls outside the API ResoMap uses: %v", u)
		}
		fake.Close()
	})
	return fake.URL, fake
}

func trackedSpecYAML(name, uri, experiment string, extra string) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [16, 24]
epochs: 3
data: fashion-mnist
train_limit: 3200
val_limit: 500
seed: 5
max_parallel: 2
hyper: {batch_size: 32, lr: 0.05}
checkpoint: {every_steps: 10}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 5}
tracking: {uri: %q, experiment: %q%s}
`, name, uri, experiment, extra)
}

// A tracked sweep through a worker killed mid-epoch, one killed right
// after an epoch's figures reached the tracking server, and (with the test
// server) the tracking server gone for a while mid-sweep: training goes on
// meanwhile, and at the end each training has one run, nested under one
// sweep run, with every epoch's figures once (steps 1..N), its params and
// tags, FINISHED, and its best model attached. A rerun against a fresh
// store with skip_completed skips every training because MLflow has it.
func TestTrackingExactlyOnce(t *testing.T) {
	uri, fake := mlflowServer(t)
	experiment := fmt.Sprintf("resomap-it-%d", time.Now().UnixNano())
	c := dial(t)
	store, tq := t.TempDir(), "tq-tracking"
	w := startWorker(t, tq, store)
	spec := writeSpec(t, trackedSpecYAML("tracked", uri, experiment, ""))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	mlf, err := tracking.New(uri, tracking.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runOf := func(res int) (tracking.Run, bool) {
		exp, err := mlf.Experiment(ctx, experiment)
		if err != nil {
			return tracking.Run{}, false
		}
		runs, err := mlf.SearchRuns(ctx, exp, fmt.Sprintf("tags.`resolution` = '%d'", res))
		if err != nil || len(runs) == 0 {
			return tracking.Run{}, false
		}
		return runs[0], true
	}
	points := func(res int) int {
		r, ok := runOf(res)
		if !ok {
			return 0
		}
		h, _ := mlf.History(ctx, r.Info.RunID, "val_acc")
		return len(h)
	}
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "16", "mid_e*.json")
	waitFor(t, "16 px to train", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	w.kill9(t) // mid-epoch
	w = startWorker(t, tq, store)
	waitFor(t, "16 px's first epoch on the tracking server", 3*time.Minute, func() bool { return points(16) >= 1 })
	w.kill9(t) // right after an epoch's figures were logged
	w = startWorker(t, tq, store)
	if fake != nil {
		fake.SetDown(true)
		epochs := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "24", "epoch_0002.json")
		waitFor(t, "24 px to train an epoch with the tracking server down", 3*time.Minute, func() bool { return len(glob(t, epochs)) > 0 })
		if out, _ := starter(t, tq, store, "status", "--id", "sweep-tracked"); !strings.Contains(out, "MLflow run behind") {
			t.Logf("status while the tracking server is down (its syncs may still be retrying):\n%s", out)
		}
		fake.SetDown(false)
	}
	p := result(t, c, "sweep-tracked", 10*time.Minute)
	for _, o := range p.Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
	}
	checkTrackedRuns(t, mlf, experiment, p.Combos)

	// The same sweep again, on a fresh store: MLflow has every training.
	spec = writeSpec(t, trackedSpecYAML("tracked", uri, experiment, ", skip_completed: true"))
	fresh, tq := t.TempDir(), "tq-tracking-rerun"
	startWorker(t, tq, fresh)
	if out, err := starter(t, tq, fresh, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p = result(t, c, "sweep-tracked", 5*time.Minute)
	for _, o := range p.Combos {
		if o.Status != sweep.Skipped || !strings.HasPrefix(o.SkippedFrom, "mlflow run ") || o.BestValAcc == 0 {
			t.Errorf("%s: %s from %q (best %.3f), want skipped because MLflow has it", o.ID(), o.Status, o.SkippedFrom, o.BestValAcc)
		}
	}
	if got := glob(t, filepath.Join(fresh, "runs", "*", "*", "*", "*", "*.json")); len(got) > 0 {
		t.Errorf("the rerun trained: %v", got)
	}
	checkTrackedRuns(t, mlf, experiment, nil) // still one run each, unchanged
}

// checkTrackedRuns asserts the experiment's runs: one parent, one run per
// training (found by its config hash), each complete and logged once.
func checkTrackedRuns(t *testing.T, mlf *tracking.Client, experiment string, combos []sweep.Outcome) {
	t.Helper()
	ctx := context.Background()
	exp, err := mlf.Experiment(ctx, experiment)
	if err != nil {
		t.Fatal(err)
	}
	all, err := mlf.SearchRuns(ctx, exp, "")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var parent string
	for _, r := range all {
		kinds[r.Tag(tracking.TagKind)]++
		if r.Tag(tracking.TagKind) == "sweep" {
			parent = r.Info.RunID
			if r.Info.Status != tracking.StatusFinished {
				t.Errorf("sweep run %s: %s", r.Info.RunID, r.Info.Status)
			}
		}
	}
	if kinds["sweep"] != 1 || kinds["training"] != 2 || len(all) != 3 {
		t.Fatalf("runs by kind %v (%d in all), want 1 sweep and 2 trainings", kinds, len(all))
	}
	for _, r := range all {
		if r.Tag(tracking.TagKind) != "training" {
			continue
		}
		hash := r.Tag(tracking.TagConfigHash)
		found, err := mlf.SearchRuns(ctx, exp, "tags.`"+tracking.TagConfigHash+"` = '"+hash+"'")
		if err != nil || len(found) != 1 {
			t.Errorf("runs/search by config hash %s: %d runs (%v)", hash, len(found), err)
		}
		if r.Info.Status != tracking.StatusFinished || r.Tag("mlflow.parentRunId") != parent || r.Param("lr") != "0.05" || r.Tag("model") != "smallcnn" {
			t.Errorf("run %s (%s): %s, parent %q (want %q), lr %q", r.Info.RunName, r.Info.RunID, r.Info.Status, r.Tag("mlflow.parentRunId"), parent, r.Param("lr"))
		}
		for _, k := range []string{"train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s", "epoch_seconds"} {
			h, err := mlf.History(ctx, r.Info.RunID, k)
			if err != nil {
				t.Fatal(err)
			}
			var steps []int64
			for _, m := range h {
				steps = append(steps, m.Step)
			}
			if fmt.Sprint(steps) != "[1 2 3]" {
				t.Errorf("%s %s: steps %v, want [1 2 3] once each", r.Info.RunName, k, steps)
			}
		}
		sizes, err := mlf.ArtifactSizes(ctx, r.Info.RunID, "best_model")
		if err != nil || sizes["best_model/best_model.safetensors"] == 0 || sizes["best_model/best_model.json"] == 0 {
			t.Errorf("%s: best model artifacts %v (%v)", r.Info.RunName, sizes, err)
		}
		for _, o := range combos {
			if o.ConfigHash == hash && o.TrackingRun != r.Info.RunID {
				t.Errorf("%s: outcome names run %q, the server has %q", o.ID(), o.TrackingRun, r.Info.RunID)
			}
		}
	}
}

// Credentials the server refuses, or a server that only fails: one clear
// line in `starter status` and the worker's log, and the sweep completes.
func TestTrackingRefusedSweepCompletes(t *testing.T) {
	fake := mlflowtest.New()
	defer fake.Close()
	fake.RequireToken("the-right-token")
	t.Setenv(tracking.EnvToken, "a-wrong-token")
	t.Setenv(tracking.EnvURI, fake.URL) // the worker's own server: its token goes there
	c := dial(t)
	store, tq := t.TempDir(), "tq-tracking-refused"
	startWorker(t, tq, store)
	yaml := strings.Replace(trackedSpecYAML("refused", fake.URL, "x", ""), "resolutions: [16, 24]", "resolutions: [16]", 1)
	yaml = strings.Replace(yaml, "epochs: 3", "epochs: 1", 1)
	if out, err := starter(t, tq, store, "--sweep", writeSpec(t, yaml)); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-refused", 5*time.Minute)
	o := p.Combos[0]
	if o.Status != sweep.Completed {
		t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
	}
	out, err := starter(t, tq, store, "status", "--id", "sweep-refused")
	if err != nil || !strings.Contains(out, "401 Unauthorized (check MLFLOW_TRACKING_TOKEN") {
		t.Errorf("status does not say why tracking failed: %v\n%s", err, out)
	}
	t.Logf("status:\n%s", out)
}

// A worker's token goes only to the tracking server its own environment
// names: a sweep whose spec names another server (a listener that records
// every request's headers) completes, the listener never sees the token,
// and `starter status` says why the sweep is not tracked, in one line.
func TestTrackingCredentialsStayWithTheWorkersServer(t *testing.T) {
	own := mlflowtest.New()
	defer own.Close()
	var mu sync.Mutex
	var heard []string
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heard = append(heard, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer listener.Close()
	t.Setenv(tracking.EnvToken, "the-workers-token")
	t.Setenv(tracking.EnvURI, own.URL)
	c := dial(t)
	store, tq := t.TempDir(), "tq-tracking-elsewhere"
	startWorker(t, tq, store)
	yaml := strings.Replace(trackedSpecYAML("elsewhere", listener.URL, "x", ""), "resolutions: [16, 24]", "resolutions: [16]", 1)
	yaml = strings.Replace(yaml, "epochs: 3", "epochs: 1", 1)
	if out, err := starter(t, tq, store, "--sweep", writeSpec(t, yaml)); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	if o := result(t, c, "sweep-elsewhere", 5*time.Minute).Combos[0]; o.Status != sweep.Completed {
		t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
	}
	mu.Lock()
	for _, h := range heard {
		if strings.Contains(h, "the-workers-token") {
			t.Errorf("the spec's server heard the worker's token: %s", h)
		}
	}
	mu.Unlock()
	out, err := starter(t, tq, store, "status", "--id", "sweep-elsewhere")
	if err != nil || !strings.Contains(out, "credentials are sent only to this worker's own tracking server") {
		t.Errorf("status does not say why the sweep is not tracked: %v\n%s", err, out)
	}
	t.Logf("status:\n%s", out)
}
