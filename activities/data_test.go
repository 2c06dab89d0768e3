package activities_test

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

func writePhoto(t *testing.T, p string, shade uint8) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	for i := range img.Pix {
		img.Pix[i] = shade + uint8(i%7)
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// photoFolder is an image folder of two classes of 24 PNGs.
func photoFolder(t *testing.T) string {
	dir := t.TempDir()
	for i := range 24 {
		writePhoto(t, filepath.Join(dir, "light", string(rune('a'+i))+".png"), 150+uint8(i))
		writePhoto(t, filepath.Join(dir, "dark", string(rune('a'+i))+".png"), 10+uint8(i))
	}
	return dir
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
	writePhoto(t, filepath.Join(dir, "dark", "c.png"), 99)
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
	acts.Trainer.Data.OpenFile = func(path string) (io.ReadCloser, error) {
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
