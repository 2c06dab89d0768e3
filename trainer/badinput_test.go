package trainer_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

func writePNG(t *testing.T, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bad input gives one clear error and writes nothing.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	cache := t.TempDir()
	tr := newTrainer(t, cache)
	good := resumeConfig()
	good.Epochs = 1

	malformed := t.TempDir()
	for _, n := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		os.WriteFile(filepath.Join(malformed, n), []byte("this is not an IDX file"), 0o644)
	}
	truncated := t.TempDir()
	for _, n := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		src, _ := os.ReadFile(filepath.Join(dataset.FashionMNISTDir, n+".gz"))
		os.WriteFile(filepath.Join(truncated, n+".gz"), src[:len(src)/2], 0o644)
	}
	oneClass := t.TempDir()
	writePNG(t, filepath.Join(oneClass, "cats", "a.png"))
	writePNG(t, filepath.Join(oneClass, "cats", "b.png"))

	cases := []struct {
		name string
		edit func(*sweep.Config)
		want string
	}{
		{"unknown model", func(c *sweep.Config) { c.Model = "alexnet" }, `unknown model "alexnet"`},
		{"resolution too small", func(c *sweep.Config) { c.Resolution = 4 }, "resolution 4 out of range"},
		{"resolution absurd", func(c *sweep.Config) { c.Resolution = 100000 }, "resolution 100000 out of range"},
		{"vgg below its minimum", func(c *sweep.Config) { c.Model, c.Resolution = "vgg11", 16 }, "resolution 16 out of range for vgg11"},
		{"zero epochs", func(c *sweep.Config) { c.Epochs = 0 }, "epochs"},
		{"negative lr", func(c *sweep.Config) { c.LR = -1 }, "lr"},
		{"unknown optimizer", func(c *sweep.Config) { c.Optimizer = "lbfgs" }, "optimizer"},
		{"missing data", func(c *sweep.Config) { c.Data = "/nonexistent/data" }, "/nonexistent/data"},
		{"malformed IDX", func(c *sweep.Config) { c.Data = malformed }, "not an IDX file"},
		{"truncated IDX", func(c *sweep.Config) { c.Data = truncated }, "unexpected EOF"},
		{"one-class folder", func(c *sweep.Config) { c.Data = oneClass }, "at least 2"},
		{"batch larger than data", func(c *sweep.Config) { c.BatchSize = 5000 }, "batch_size 5000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			out := t.TempDir()
			st, _ := store.NewFile(out)
			repo := checkpoint.Repo{Store: st}
			_, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{
				OnCheckpoint: func(ctx context.Context, c *checkpoint.Checkpoint) error { _, err := repo.Save(ctx, c); return err },
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if files, _ := st.List(context.Background(), ""); len(files) != 0 {
				t.Fatalf("bad input wrote %d files", len(files))
			}
		})
	}
}

// A corrupt or foreign checkpoint is refused, never loaded.
func TestCorruptAndForeignCheckpointsAreRefused(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	cfg := resumeConfig()
	cfg.Epochs = 1
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := res.Last

	flipped := *good
	flipped.Model = bytes.Clone(good.Model)
	flipped.Model[len(flipped.Model)/2] ^= 1
	truncated := *good
	truncated.Optim = good.Optim[:len(good.Optim)-100]
	other := cfg
	other.Seed++ // another training: same shapes, other config hash
	for _, tc := range []struct {
		name string
		cfg  sweep.Config
		c    *checkpoint.Checkpoint
		want error
	}{
		{"bit flipped", cfg, &flipped, checkpoint.ErrCorrupt},
		{"truncated", cfg, &truncated, checkpoint.ErrCorrupt},
		{"foreign", other, good, checkpoint.ErrForeign},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.Train(context.Background(), tc.cfg, tc.c, trainer.RunOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}

	// A checkpoint of another architecture is refused tensor by tensor.
	m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "resnet18", InChannels: 1, NumClasses: 10, Momentum: 0.9, Mean: []float32{0.5}, Std: []float32{0.5}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := trainer.Import(m, good.Model, good.Optim); !errors.Is(err, checkpoint.ErrForeign) {
		t.Fatalf("importing smallcnn tensors into resnet18: %v, want ErrForeign", err)
	}
}

func TestMissingLibraryExplainsHowToBuildIt(t *testing.T) {
	_, err := torch.Open(filepath.Join(t.TempDir(), "libresomap.so"))
	if !errors.Is(err, torch.ErrLibraryMissing) || !strings.Contains(err.Error(), "make shim") {
		t.Fatalf("error %v, want ErrLibraryMissing naming `make shim`", err)
	}
}

// Weights that are no state dict fail Prepare, before anything trains (not
// every first epoch, retried), saying so.
func TestWeightsThatAreNoStateDictFailPrepare(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	tr.Weights.CacheDir = t.TempDir()
	bad := filepath.Join(t.TempDir(), "weights.pth")
	if err := os.WriteFile(bad, []byte("PK\x03\x04 a cut zip, not torch.save's"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := resumeConfig()
	cfg.Init = &sweep.Init{Weights: bad, LRScale: 1, BatchNorm: sweep.BatchNormKeep}
	_, err := tr.Prepare(context.Background(), cfg)
	if !errors.Is(err, pretrained.ErrFormat) || !strings.Contains(err.Error(), "init.weights: "+bad) || strings.Count(err.Error(), bad) != 1 {
		t.Fatalf("Prepare with a weights file that is no state dict: %v", err)
	}
}
