package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// A sweep file with only name, models and resolutions runs on documented
// defaults; explain shows every effective value and where it came from;
// an unknown field is still refused.
func TestExplainAMinimalSweepFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mini.yaml")
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn, resnet18]\nresolutions: [32, 34]\nhyper: {lr: 0.05, weight_decay: 0}\n"), 0o644)
	_, o, err := parse([]string{"explain", "--sweep", p, "--epochs", "2", "--seeds", "1,2"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := loadSpec(o)
	if err != nil {
		t.Fatalf("a minimal sweep file is refused: %v", err)
	}
	if spec.Hyper.LR != 0.05 || spec.Hyper.WeightDecay != 0 || spec.Hyper.BatchSize != 64 || spec.Epochs != 2 {
		t.Fatalf("effective spec %+v", spec.Hyper)
	}
	var out bytes.Buffer
	if err := explain(o, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`4 combinations, 8 trainings \(2 seeds each\) of 2 epochs`, `\nseeds +\[1, 2\] +flag\n`,
		`\nhyper\.lr +0\.05 +file\n`, `\nhyper\.weight_decay +0 +file\n`, `\nhyper\.batch_size +64 +default\n`,
		`\nepochs +2 +flag\n`, `\nresolutions +\[32, 34\] +file\n`, `\ndata +fashion-mnist +default\n`,
		`\naugment +cifar +default for IDX data\n`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [16]\nlearning_rate: 0.1\n"), 0o644)
	if err := explain(o, &out); !errors.Is(err, sweep.ErrInvalid) {
		t.Fatalf("unknown field: %v", err)
	}
	// Fashion-MNIST's images are 28 px: 64 px would measure upsampling.
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [64]\n"), 0o644)
	if _, err := loadSpec(o); !errors.Is(err, sweep.ErrInvalid) || !strings.Contains(err.Error(), "64 px is 2.3x the data's native size (28 px") {
		t.Fatalf("64 px of 28 px images: %v", err)
	}
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [64]\nallow_upsampling: true\n"), 0o644)
	if _, err := loadSpec(o); err != nil {
		t.Fatalf("with allow_upsampling: %v", err)
	}
}

// explain estimates each combination's compute time from earlier runs of
// the same model and resolution recorded in the store, per device, or says
// it has none.
func TestExplainEstimatesFromEarlierRuns(t *testing.T) {
	dir := t.TempDir()
	st, _ := store.NewFile(dir)
	o := sweep.Outcome{
		Identity: sweep.Identity{Model: "smallcnn", Resolution: 32, ConfigHash: strings.Repeat("a", 64)},
		Status:   sweep.Completed, Progress: sweep.Progress{EpochsDone: 3},
		Course:  sweep.Course{Device: "cpu"},
		Timings: sweep.Timings{EpochRuns: 3, TrainSeconds: 30, EvalSeconds: 3},
	}
	if _, err := (results.Index{Store: st}).Record(context.Background(), "earlier", o); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "est.yaml")
	os.WriteFile(p, []byte("name: est\nmodels: [smallcnn]\nresolutions: [16, 32]\nepochs: 2\n"), 0o644)
	_, opts, err := parse([]string{"explain", "--sweep", p, "--store", "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := explain(opts, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"smallcnn@32: 22s on cpu (1 runs)", "smallcnn@16: no estimate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
}

// Tracking comes from the sweep file or, where it is silent, from the
// MLflow client variables, and explain says which.
func TestExplainShowsTrackingAndItsOrigin(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tracked.yaml")
	os.WriteFile(p, []byte("name: tracked\nmodels: [smallcnn]\nresolutions: [16]\ntracking: {skip_completed: true}\n"), 0o644)
	t.Setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
	t.Setenv("MLFLOW_EXPERIMENT_NAME", "")
	_, o, err := parse([]string{"explain", "--sweep", p})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := explain(o, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`\ntracking\.uri +http://mlflow\.example:5000 +env MLFLOW_TRACKING_URI\n`,
		`\ntracking\.skip_completed +true +file\n`, `\ntracking\.log_models +true +default\n`} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
	t.Setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
	if _, err := loadSpec(o); !errors.Is(err, sweep.ErrInvalid) || !strings.Contains(err.Error(), "tracking.uri") {
		t.Errorf("a file URI: %v", err)
	}
}

// A photo folder with no recipe given trains with the ImageNet recipe, and
// explain says so (not an empty value).
func TestExplainShowsThePhotoRecipe(t *testing.T) {
	photos := testfixture.Photos{N: 8, W: 40, H: 40, Paint: func(*image.RGBA, int, int) {}}.Write(t, filepath.Join(t.TempDir(), "photos"))
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte("name: p\nmodels: [smallcnn]\nresolutions: [32]\ndata: "+photos+"\n"), 0o644)
	_, o, err := parse([]string{"explain", "--sweep", p})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := explain(o, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\naugment +imagenet +default for image folder\n`).Match(out.Bytes()) {
		t.Errorf("explain does not show the photo recipe:\n%s", out.String())
	}
}
