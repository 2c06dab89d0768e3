package trainer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/resomap/resomap/trainer"
)

// A resnet18 trained by ResoMap on an image folder, evaluated with plain
// PyTorch and torchvision by examples/evaluate_in_pytorch.py from its
// best_model.safetensors alone (metadata: classes, normalisation,
// validation transform), scores ResoMap's recorded validation accuracy.
func TestCheckpointEvaluatesTheSameInPyTorch(t *testing.T) {
	py := pythonTorch(t)
	dir := t.TempDir()
	for _, split := range []struct {
		name string
		n    int
	}{{"train", 192}, {"val", 64}} {
		src := photoFolder(t, split.n)
		if err := os.Rename(src, filepath.Join(dir, split.name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := resumeConfig()
	cfg.Model, cfg.Resolution, cfg.Epochs, cfg.Data = "resnet18", 32, 1, dir
	cfg.BatchSize, cfg.TrainLimit, cfg.ValLimit = 16, 0, 0
	tr := newTrainer(t, t.TempDir())
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(t.TempDir(), "best_model.safetensors")
	if err := os.WriteFile(weights, res.Last.Model, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "../examples/evaluate_in_pytorch.py", weights, filepath.Join(dir, "val")).CombinedOutput()
	if err != nil {
		t.Fatalf("evaluate_in_pytorch.py: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 || f[0] != "accuracy" {
		t.Fatalf("output %q", out)
	}
	got, _ := strconv.ParseFloat(f[1], 64)
	want := res.Last.Record.Metrics[0].ValAcc
	t.Logf("PyTorch: %s; ResoMap recorded %.6f", strings.TrimSpace(string(out)), want)
	if d := got - want; d > 0.005 || d < -0.005 || f[3] != "64" {
		t.Fatalf("PyTorch accuracy %v over %s images, ResoMap recorded %v", got, f[3], want)
	}
	if res.Last.Record.Data == nil || strings.Join(res.Last.Record.Data.Classes, ",") != "blue,red" {
		t.Fatalf("record's data %+v", res.Last.Record.Data)
	}
}

// A checkpoint evaluated at its own training resolution scores exactly the
// figures its training recorded; at other resolutions it is evaluated
// through the validation transform at that size.
func TestEvaluateAtResolutions(t *testing.T) {
	if err := resumeConfig().CheckMicroBatch(8); err == nil {
		t.Fatal("smallcnn's config of whole batches accepted micro-batches of 8")
	}
	cfg := resumeConfig()
	cfg.Epochs, cfg.MicroBatch = 1, 8 // with BatchNorm, the config names its micro-batch
	tr := newTrainer(t, t.TempDir())
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{MicroBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Last
	m := c.Record.Metrics[0]
	prepared, err := tr.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var evals []trainer.Evaluation
	err = tr.EvaluateAt(context.Background(), prepared, c.Record, c.Model, []int{cfg.Resolution, 24}, c.Record.MicroBatch,
		func(e trainer.Evaluation) error { evals = append(evals, e); return nil }, nil)
	if err != nil || len(evals) != 2 {
		t.Fatal(err, evals)
	}
	own := evals[0]
	if own.Acc != m.ValAcc || own.Loss != m.ValLoss || own.Images != cfg.ValLimit {
		t.Fatalf("at its own resolution: %+v; training recorded acc %v loss %v", own, m.ValAcc, m.ValLoss)
	}
	if other := evals[1]; other.Resolution != 24 || other.Images != cfg.ValLimit || other.Acc == own.Acc && other.Loss == own.Loss {
		t.Fatalf("at 24 px: %+v", other)
	}
}
