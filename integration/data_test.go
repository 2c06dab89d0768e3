package integration

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
)

// writePhotos makes an image folder of two classes of 64 small PNGs each.
func writePhotos(t *testing.T, dir string) {
	t.Helper()
	testfixture.Photos{N: 128, W: 24, H: 20, Classes: []string{"bright", "dim"}, PNG: true,
		Name: func(i int) string { return fmt.Sprintf("%03d", i/2) },
		Paint: func(img *image.RGBA, i, cls int) {
			for k := range img.Pix {
				img.Pix[k] = uint8(60+120*(1-cls)) + uint8((k*7+(i/2)*13)%50)
			}
		}}.Write(t, dir)
}

func photoSpec(name, data string) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [32]
epochs: 3
data: %s
allow_upsampling: true
seed: 3
max_parallel: 1
hyper: {batch_size: 8, optimizer: sgd, lr: 0.05, momentum: 0.9, schedule: cosine, flip: true}
checkpoint: {every_steps: 4}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 5}
`, name, data)
}

// 12.2: every image of the data set touched mid-sweep (as a copy to another
// machine would) and the worker restarted: the sweep completes with the
// untouched run's weights. One image changed mid-sweep: the combination
// fails with an error naming it.
func TestTouchedDataTrainsOnChangedDataIsNamed(t *testing.T) {
	c := dial(t)
	data := t.TempDir()
	writePhotos(t, data)
	spec := writeSpec(t, photoSpec("photos", data))
	want := referenceRun(t, c, spec, "photos")

	run := func(id string, edit func()) sweep.Outcome {
		store, tq := t.TempDir(), "tq-"+id
		w := startWorker(t, tq, store)
		if out, err := starter(t, tq, store, "--sweep", spec, "--id", id); err != nil {
			t.Fatalf("starter: %v\n%s", err, out)
		}
		waitFor(t, "epoch 1", 3*time.Minute, func() bool {
			return len(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "epoch_0001.json"))) > 0
		})
		w.kill9(t)
		edit()
		startWorker(t, tq, store)
		o := result(t, c, id, 5*time.Minute).Combos[0]
		if o.Status == sweep.Completed && !bytes.Equal(finalWeights(t, store, "32"), want) {
			t.Error("final weights differ from the untouched run")
		}
		return o
	}
	later := time.Now().Add(3 * time.Hour)
	touched := run("sweep-touched", func() {
		filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				os.Chtimes(p, later, later)
			}
			return nil
		})
	})
	if touched.Status != sweep.Completed {
		t.Fatalf("touched data: %s (%s)", touched.Status, touched.Reason)
	}
	changed := run("sweep-changed", func() {
		b, _ := os.ReadFile(filepath.Join(data, "dim", "007.png"))
		os.WriteFile(filepath.Join(data, "dim", "007.png"), append(b, 0), 0o644)
	})
	if changed.Status != sweep.Failed || !strings.Contains(changed.Reason, "dim/007.png") {
		t.Fatalf("changed image: %s (%s), want failed naming dim/007.png", changed.Status, changed.Reason)
	}
}
