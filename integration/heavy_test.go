package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
)

// peakRSS is a live process's peak resident memory in bytes (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := testfixture.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vgg11 at 40 px on one thread: checkpoints of about 1 GB with momentum,
// slow to save and to validate, with a 10 s heartbeat timeout. Every phase
// heartbeats, so each epoch is trained once, by one attempt. And the
// worker's memory is proportional to its one model: its peak is at most 3x
// the checkpoint it writes (weights and momentum). Two trainings take
// turns on its one slot, so an epoch either goes on from a resident model
// or restores next to nothing, and mid-epoch checkpoints are stored while
// training goes on: libtorch's weights, momentum and (during a step)
// gradients make 1.5x, a snapshot being stored 1x, which leaves half a
// checkpoint for the rest.
func TestWorkerMemoryIsProportionalToItsModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains vgg11 for minutes")
	}
	c := dial(t)
	spec := writeSpec(t, `name: vggmem
models: [vgg11]
resolutions: [40]
seeds: [1, 2]
epochs: 2
data: fashion-mnist
allow_upsampling: true
train_limit: 256
val_limit: 64
max_parallel: 2
hyper: {batch_size: 32, optimizer: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0005, schedule: constant}
checkpoint: {every_steps: 3}
activity: {heartbeat_timeout_seconds: 10, max_attempts: 3}
`)
	store, tq := t.TempDir(), "tq-vggmem"
	w := startWorker(t, tq, store, "--threads", "1", "--concurrency", "1")
	if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-vggmem"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-vggmem", 20*time.Minute)
	for _, o := range p.Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
		for _, r := range o.Resumes {
			if r.Attempt > 1 {
				t.Errorf("%s: epoch %d needed attempt %d", o.ID(), r.Epoch, r.Attempt)
			}
		}
	}
	log, _ := os.ReadFile(w.log.Name())
	if n := strings.Count(string(log), `msg="epoch done"`); n != 4 {
		t.Errorf("%d epochs trained, want 4 (two per training)", n)
	}
	ckpt := checkpointBytes(t, store)
	peak := peakRSS(t, w.cmd.Process.Pid)
	t.Logf("worker peak RSS %.2f GB, checkpoint %.2f GB: %.2fx", float64(peak)/(1<<30), float64(ckpt)/(1<<30), float64(peak)/float64(ckpt))
	if float64(peak) > 3*float64(ckpt) {
		t.Errorf("worker peak RSS %.2f GB is %.2fx the %.2f GB checkpoint, want at most 3x", float64(peak)/(1<<30), float64(peak)/float64(ckpt), float64(ckpt)/(1<<30))
	}
}

// checkpointBytes is the size of a final checkpoint's two tensor files in
// the file store at dir.
func checkpointBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var model, optim int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		switch {
		case err != nil:
			return err
		case d.Name() == "final_model.safetensors":
			model = info.Size()
		case d.Name() == "final_model.optim.safetensors":
			optim = info.Size()
		}
		return nil
	})
	if err != nil || model == 0 || optim == 0 {
		t.Fatalf("no final checkpoint in %s (model %d, optimiser %d bytes): %v", dir, model, optim, err)
	}
	return model + optim
}
