package tracking_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/tracking/mlflowtest"
)

func client(t *testing.T, s *mlflowtest.Server, cred tracking.Credentials) *tracking.Client {
	t.Helper()
	c, err := tracking.New(s.URL, cred)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkNoUnexpected(t *testing.T, s *mlflowtest.Server) {
	t.Helper()
	if u := s.Unexpected(); len(u) > 0 {
		t.Errorf("calls outside the API ResoMap uses: %v", u)
	}
}

// training is a run of epochs epochs done, the last ones still to come.
func training(epochs, of int, status string) tracking.Training {
	tr := tracking.Training{
		Sweep: tracking.Sweep{Experiment: "resomap-test", Name: "test", WorkflowID: "sweep-test", Start: 1000},
		Name:  "smallcnn@16", ConfigHash: "c0ffee", WorkflowID: "sweep-test/smallcnn@16", Start: 2000,
		Params: []tracking.Tag{{Key: "lr", Value: "0.1"}, {Key: "epochs", Value: "3"}},
		Tags:   []tracking.Tag{{Key: "model", Value: "smallcnn"}},
		Status: status,
	}
	for e := 1; e <= epochs; e++ {
		for _, k := range []string{"val_acc", "train_loss"} {
			tr.Metrics = append(tr.Metrics, tracking.Metric{Key: k, Value: float64(e) / float64(of), Timestamp: int64(3000 + e), Step: int64(e)})
		}
	}
	return tr
}

func artifact(name, body string) tracking.Artifact {
	return tracking.Artifact{Name: name, Size: int64(len(body)), Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(body)), nil
	}}
}

// The run a training logs to over its life: created once, every epoch's
// points once however often a sync repeats, status set last.
func TestSyncLogsEachPointOnce(t *testing.T) {
	s := mlflowtest.New()
	defer s.Close()
	c := client(t, s, tracking.Credentials{})
	ctx := context.Background()
	for epoch := 1; epoch <= 3; epoch++ {
		for range 2 { // every sync twice: a retry after a lost answer
			if _, err := c.SyncTraining(ctx, training(epoch, 3, tracking.StatusRunning)); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := training(3, 3, tracking.StatusFinished)
	done.End = 9000
	done.Artifacts = []tracking.Artifact{artifact("best_model/best_model.safetensors", "weights"), artifact("best_model/best_model.json", "{}")}
	for range 2 {
		if _, err := c.SyncTraining(ctx, done); err != nil {
			t.Fatal(err)
		}
	}
	runs := s.Runs()
	if len(runs) != 2 {
		t.Fatalf("%d runs, want a parent and a training: %+v", len(runs), runs)
	}
	parent, run := runs[0], runs[1]
	if parent.Tags[tracking.TagKind] != "sweep" {
		parent, run = run, parent
	}
	if run.Tags["mlflow.parentRunId"] != parent.ID || run.Tags[tracking.TagConfigHash] != "c0ffee" {
		t.Errorf("nesting or identity lost: %v", run.Tags)
	}
	for _, k := range []string{"val_acc", "train_loss"} {
		if got := run.Steps(k); len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Errorf("%s steps %v, want 1..3 once each", k, got)
		}
	}
	if run.Status != tracking.StatusFinished || run.End != 9000 || run.Params["lr"] != "0.1" {
		t.Errorf("run %s end %d params %v", run.Status, run.End, run.Params)
	}
	if run.Artifacts["best_model/best_model.safetensors"] != len("weights") {
		t.Errorf("artifacts %v", run.Artifacts)
	}
	if n := s.Calls("artifacts/put"); n != 2 {
		t.Errorf("%d uploads, want 2 (the second sync finds them)", n)
	}
	checkNoUnexpected(t, s)
}

// Syncs racing for one training (a retried attempt and the zombie of the
// one before, on several workers) leave one active run and one parent,
// whatever the interleaving; the seed is printed on failure.
func TestRacingSyncsLeaveOneRun(t *testing.T) {
	seed := rand.Uint64()
	for round := range 30 {
		s := mlflowtest.New()
		c := client(t, s, tracking.Credentials{})
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		var wg sync.WaitGroup
		n := 2 + rng.IntN(4)
		for i := range n {
			wg.Add(1)
			tr := training(1+(i+rng.IntN(3))%3, 3, tracking.StatusRunning)
			tr.Start += int64(rng.IntN(3)) // creators need not agree on when it started
			tr.Sweep.Start += int64(rng.IntN(3))
			go func() {
				defer wg.Done()
				if _, err := c.SyncTraining(context.Background(), tr); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// One more sync, as the workflow's next one: it completes the run.
		if _, err := c.SyncTraining(context.Background(), training(3, 3, tracking.StatusRunning)); err != nil {
			t.Fatal(err)
		}
		active := map[string]int{}
		for _, r := range s.Runs() {
			if r.Stage == "active" {
				active[r.Tags[tracking.TagKind]]++
				if r.Tags[tracking.TagKind] == "training" {
					if got := r.Steps("val_acc"); len(got) != 3 {
						t.Errorf("seed %d round %d: val_acc steps %v", seed, round, got)
					}
				}
			}
		}
		if active["sweep"] != 1 || active["training"] != 1 {
			t.Errorf("seed %d round %d: %d syncs left active runs %v, want one of each", seed, round, n, active)
		}
		s.Close()
	}
}

// Each failure is one clear line, and says whether a retry may mend it.
func TestErrorsAreClearAndClassified(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		setup     func(*mlflowtest.Server)
		cred      tracking.Credentials
		want      string
		retryable bool
	}{
		{"bad credentials", func(s *mlflowtest.Server) { s.RequireToken("right") }, tracking.Credentials{Token: "wrong"}, "401", false},
		{"server error", func(s *mlflowtest.Server) { s.FailWith(http.StatusServiceUnavailable) }, tracking.Credentials{}, "503", true},
		{"deleted experiment", func(s *mlflowtest.Server) {
			c, _ := tracking.New(s.URL, tracking.Credentials{})
			c.Experiment(ctx, "resomap-test")
			s.DeleteExperiment("resomap-test")
		}, tracking.Credentials{}, "is deleted", false},
		{"server down", func(s *mlflowtest.Server) { s.SetDown(true) }, tracking.Credentials{}, "mlflow GET experiments/get-by-name", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mlflowtest.New()
			defer s.Close()
			tc.setup(s)
			_, err := client(t, s, tc.cred).SyncTraining(ctx, training(1, 3, tracking.StatusRunning))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, tc.want)
			}
			if tracking.Retryable(err) != tc.retryable {
				t.Errorf("Retryable(%v) = %v", err, !tc.retryable)
			}
		})
	}
	// A token passes where one is needed.
	s := mlflowtest.New()
	defer s.Close()
	s.RequireToken("right")
	if _, err := client(t, s, tracking.Credentials{Token: "right"}).SyncTraining(ctx, training(1, 3, tracking.StatusRunning)); err != nil {
		t.Fatal(err)
	}
}

func TestConfigurationErrors(t *testing.T) {
	for _, uri := range []string{"file:///tmp/mlruns", "databricks", "localhost:5000", "http://"} {
		if _, err := tracking.New(uri, tracking.Credentials{}); err == nil || !strings.Contains(err.Error(), "want http(s)") {
			t.Errorf("New(%q): %v", uri, err)
		}
	}
	env := map[string]string{tracking.EnvUsername: "me"}
	if _, err := tracking.CredentialsFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), tracking.EnvPassword) {
		t.Errorf("a user without a password: %v", err)
	}
	env = map[string]string{tracking.EnvInsecureTLS: "yes please"}
	if _, err := tracking.CredentialsFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Error("a bad MLFLOW_TRACKING_INSECURE_TLS was accepted")
	}
	// Not a tracking server: a web page where JSON was due, or a 404.
	for _, status := range []int{http.StatusOK, http.StatusNotFound} {
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, "<html>a web site</html>")
		}))
		c, _ := tracking.New(web.URL, tracking.Credentials{})
		_, err := c.Experiment(context.Background(), "x")
		if err == nil || tracking.Retryable(err) {
			t.Errorf("a URI that is not a tracking server (%d): %v (retryable %v)", status, err, tracking.Retryable(err))
		}
		web.Close()
	}
}

// FindFinished finds only a FINISHED run of the config.
func TestFindFinished(t *testing.T) {
	s := mlflowtest.New()
	defer s.Close()
	c := client(t, s, tracking.Credentials{})
	ctx := context.Background()
	if _, err := c.SyncTraining(ctx, training(2, 3, tracking.StatusRunning)); err != nil {
		t.Fatal(err)
	}
	if f, err := c.FindFinished(ctx, "resomap-test", "c0ffee"); err != nil || f != nil {
		t.Fatalf("a running run counted as done: %+v %v", f, err)
	}
	done := training(3, 3, tracking.StatusFinished)
	done.End = 5000
	if _, err := c.SyncTraining(ctx, done); err != nil {
		t.Fatal(err)
	}
	f, err := c.FindFinished(ctx, "resomap-test", "c0ffee", "val_acc")
	if err != nil || f == nil || len(f.Histories["val_acc"]) != 3 {
		t.Fatalf("finished run: %+v %v", f, err)
	}
	if f2, _ := c.FindFinished(ctx, "resomap-test", "other"); f2 != nil {
		t.Errorf("another config's run found: %+v", f2)
	}
	checkNoUnexpected(t, s)
}
