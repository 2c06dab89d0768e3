package activities_test

import (
	"errors"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// photoFolder is an image folder of two classes of 24 PNGs.
func photoFolder(t *testing.T) string {
	return testfixture.Photos{N: 48, W: 20, H: 20, Classes: []string{"light", "dark"}, PNG: true,
		Name: func(i int) string { return string(rune('a' + i/2)) },
		Paint: func(img *image.RGBA, i, cls int) {
			shade := []uint8{150, 10}[cls] + uint8(i/2)
			for k := range img.Pix {
				img.Pix[k] = shade + uint8(k%7)
			}
		}}.Write(t, t.TempDir())
}

// A copy of the data set with other file times (copied to another machine,
// touched) trains on; a copy whose content differs is refused, naming the
// first file that differs, and never retried.
func TestWorkersCopyOfTheDataIsCheckedByContent(t *testing.T) {
	dir := photoFolder(t)
	acts, p, env := setupWith(t, dir)
	later := time.Now().Add(2 * time.Hour)
	filepath.WalkDir(dir, func(f string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(f, later, later)
		}
		return nil
	})
	if _, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1}); err != nil {
		t.Fatalf("touched data set: %v", err)
	}
	testfixture.Photos{N: 1, W: 20, H: 20, Classes: []string{"dark"}, PNG: true, Name: func(int) string { return "c" },
		Paint: func(img *image.RGBA, _, _ int) {
			for k := range img.Pix {
				img.Pix[k] = 99 + uint8(k%7)
			}
		}}.Write(t, dir)
	_, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 2})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeInvalidInput || !strings.Contains(err.Error(), "dark/c.png") {
		t.Fatalf("changed image: %v, want a non-retryable error naming dark/c.png", err)
	}
}

// An I/O error that may pass (EIO from a network file system) fails the
// attempt retryably, and the next attempt trains.
func TestTransientReadErrorIsRetried(t *testing.T) {
	dir := photoFolder(t)
	acts, p, env := setupWith(t, dir)
	failures := 1
	acts.Engine.Trainer.Data.OpenFile = func(path string) (io.ReadCloser, error) {
		if failures > 0 {
			failures--
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EIO}
		}
		return os.Open(path)
	}
	_, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1})
	var appErr *temporal.ApplicationError
	if err == nil || errors.As(err, &appErr) && appErr.NonRetryable() {
		t.Fatalf("EIO: %v, want a retryable error", err)
	}
	if _, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// A resolution far above the data's native size is refused with a clear
// message (it would measure upsampling), and trained with allow_upsampling.
func TestUpsamplingIsRefusedUnlessAllowed(t *testing.T) {
	acts, p, env := setup(t)
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Data = "up", []string{"smallcnn"}, []int{48}, 1, p.Config.Data
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Schedule: "cosine"}}
	in := workflows.PrepareInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 48}}
	_, err := env.ExecuteActivity(acts.Prepare, in)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeInvalidInput ||
		!strings.Contains(err.Error(), "48 px is 1.7x the data's native size (28 px") {
		t.Fatalf("48 px of 28 px images: %v", err)
	}
	in.Spec.AllowUpsampling = true
	v, err := env.ExecuteActivity(acts.Prepare, in)
	if err != nil {
		t.Fatal(err)
	}
	var got workflows.Prepared
	v.Get(&got)
	if got.NativeSide != 28 {
		t.Fatalf("native side %d, want 28", got.NativeSide)
	}
}
