package integration

import (
	"os"
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

// 12.6: vgg11 (checkpoints of about 1 GB with momentum, slow to save and to
// validate on one thread) with a 10 s heartbeat timeout: every phase
// heartbeats, so each epoch is trained once, by one attempt, and the
// worker's memory stays bounded by its one training.
func TestLargeCheckpointsWithShortHeartbeatTimeout(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, `name: vgg
models: [vgg11]
resolutions: [32, 40]
epochs: 1
data: fashion-mnist
allow_upsampling: true
train_limit: 64
val_limit: 64
seed: 3
max_parallel: 2
hyper: {batch_size: 32, optimizer: sgd, lr: 0.01, momentum: 0.9, schedule: constant}
activity: {heartbeat_timeout_seconds: 10, max_attempts: 3}
`)
	store, tq := t.TempDir(), "tq-vgg"
	w := startWorker(t, tq, store, "--threads", "1", "--concurrency", "1")
	if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-vgg"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-vgg", 15*time.Minute)
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
	if n := strings.Count(string(log), `msg="epoch done"`); n != 2 {
		t.Errorf("%d epochs trained, want 2 (one per combination)", n)
	}
	peak := peakRSS(t, w.cmd.Process.Pid)
	t.Logf("worker peak RSS %.1f GB", float64(peak)/(1<<30))
	// One vgg11 training: weights, gradients and momentum in libtorch
	// (1.5 GB), one snapshot (1 GB), and the Go heap's collection headroom;
	// two attempts at once (the zombie case) would pass 6 GB.
	if peak > 5<<30 {
		t.Errorf("worker peak RSS %.1f GB for one vgg11 training at a time", float64(peak)/(1<<30))
	}
}
