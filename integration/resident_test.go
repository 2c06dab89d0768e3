package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// residentSpec: four epochs of smallcnn at 32 px, sent back to a gone
// worker's queue for at most 2 s.
func residentSpec(name string) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [32]
epochs: 4
data: fashion-mnist
train_limit: 3200
val_limit: 500
seed: 3
max_parallel: 1
hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: cosine, crop_padding: 2, flip: true}
checkpoint: {every_steps: 10}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 5, sticky_seconds: 2}
`, name)
}

// trainedBy reads a worker's log: the epochs it trained to the end, as a
// set. "epoch done" is logged before the epoch is written to the store, so
// a worker frozen between that write and its "epoch stored" line (or its
// activity's completion) still counts as the one that trained the epoch.
func trainedBy(t *testing.T, w *workerProc) map[int]bool {
	t.Helper()
	b, _ := os.ReadFile(w.log.Name())
	out := map[int]bool{}
	for _, m := range regexp.MustCompile(`msg="epoch done".* epoch=(\d+)`).FindAllSubmatch(b, -1) {
		e, _ := strconv.Atoi(string(m[1]))
		out[e] = true
	}
	return out
}

// 11.2: the same training ends with the same weights, byte for byte, when
// its epochs go on from a resident model (uninterrupted), when its worker
// is killed between epochs (the next one restores from the store on a new
// worker, after the dead worker's queue times out), and when its epochs
// alternate between two workers (each holding a stale model of two epochs
// before, which it must drop).
func TestResidentEpochsEndTheSameHoweverTheyMove(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, residentSpec("resident"))
	epochFile := func(store string, e int) bool {
		return len(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", fmt.Sprintf("epoch_%04d.json", e)))) > 0
	}

	// Uninterrupted: epochs 2-4 go on from memory.
	refStore := t.TempDir()
	startWorker(t, "tq-res-ref", refStore)
	if out, err := starter(t, "tq-res-ref", refStore, "--sweep", spec, "--id", "sweep-res-ref"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	ref := result(t, c, "sweep-res-ref", 5*time.Minute).Combos[0]
	if ref.Status != sweep.Completed || ref.ResidentEpochs != 3 || ref.EpochRuns != 4 {
		t.Fatalf("uninterrupted: %s, %d of %d epochs from a resident model; want 3 of 4", ref.Status, ref.ResidentEpochs, ref.EpochRuns)
	}
	want := finalWeights(t, refStore, "32")

	t.Run("killed between epochs", func(t *testing.T) {
		store := t.TempDir()
		w := startWorker(t, "tq-res-kill", store)
		if out, err := starter(t, "tq-res-kill", store, "--sweep", spec, "--id", "sweep-res-kill"); err != nil {
			t.Fatalf("starter: %v\n%s", err, out)
		}
		waitFor(t, "epoch 2 stored", 3*time.Minute, func() bool { return epochFile(store, 2) })
		w.kill9(t)
		startWorker(t, "tq-res-kill", store)
		o := result(t, c, "sweep-res-kill", 5*time.Minute).Combos[0]
		if o.Status != sweep.Completed || !bytes.Equal(finalWeights(t, store, "32"), want) {
			t.Fatalf("after a kill between epochs: %s, weights equal: %v", o.Status, bytes.Equal(finalWeights(t, store, "32"), want))
		}
	})

	t.Run("alternating workers", func(t *testing.T) {
		store := t.TempDir()
		ws := []*workerProc{startWorker(t, "tq-res-alt", store, "--sticky=false"), startWorker(t, "tq-res-alt", store, "--sticky=false")}
		signal := func(w *workerProc, s syscall.Signal) { w.cmd.Process.Signal(s) }
		defer func() {
			for _, w := range ws {
				signal(w, syscall.SIGCONT)
			}
		}()
		signal(ws[1], syscall.SIGSTOP)
		if out, err := starter(t, "tq-res-alt", store, "--sweep", spec, "--id", "sweep-res-alt"); err != nil {
			t.Fatalf("starter: %v\n%s", err, out)
		}
		// Epoch e is trained by worker (e-1)%2 while the other is frozen;
		// once it is stored, the roles swap.
		for e := 1; e < 4; e++ {
			waitFor(t, fmt.Sprintf("epoch %d stored", e), 3*time.Minute, func() bool { return epochFile(store, e) })
			signal(ws[e%2], syscall.SIGCONT)
			signal(ws[(e-1)%2], syscall.SIGSTOP)
		}
		// Only the worker not frozen can write epoch e, so A trained 1 and 3
		// and B 2 and 4, each going on past a model two epochs stale. The
		// log may hold more: the server can hand the next task to a frozen
		// worker's open poll (it then times out and moves, as a task does),
		// and a stale attempt can finish an epoch again once thawed. Which
		// worker completes which activity is the server's choice, so it is
		// not asserted.
		o := result(t, c, "sweep-res-alt", 5*time.Minute).Combos[0]
		a, b := trainedBy(t, ws[0]), trainedBy(t, ws[1])
		t.Logf("worker A trained epochs %v, worker B %v; resident epochs %d", a, b, o.ResidentEpochs)
		if o.Status != sweep.Completed || !a[1] || !a[3] || !b[2] || !b[4] {
			t.Fatalf("%s; worker A trained %v, B %v; want 1 and 3 on A, 2 and 4 on B", o.Status, a, b)
		}
		if !bytes.Equal(finalWeights(t, store, "32"), want) {
			t.Fatal("final weights differ from the uninterrupted run's")
		}
	})
}

// 11.4: a worker with --concurrency 2 training six combinations never
// holds more than two models (running and resident together).
func TestResidentModelsStayWithinTheWorkersBound(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, `name: bound
models: [smallcnn]
resolutions: [16, 20, 24, 28, 32, 35]
epochs: 2
data: fashion-mnist
train_limit: 640
val_limit: 200
seed: 3
max_parallel: 6
hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, schedule: cosine}
activity: {heartbeat_timeout_seconds: 10, max_attempts: 5, sticky_seconds: 2}
`)
	store := t.TempDir()
	w := startWorker(t, "tq-bound", store, "--concurrency", "2")
	if out, err := starter(t, "tq-bound", store, "--sweep", spec, "--id", "sweep-bound"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-bound", 8*time.Minute)
	resident := 0
	for _, o := range p.Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s %s", o.ID(), o.Status, o.Reason)
		}
		resident += o.ResidentEpochs
	}
	b, _ := os.ReadFile(w.log.Name())
	most, lines := 0, 0
	for _, m := range regexp.MustCompile(`msg="epoch stored".* live_models=(\d+)`).FindAllSubmatch(b, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		most, lines = max(most, n), lines+1
	}
	t.Logf("12 epochs stored, at most %d models in memory; %d epochs went on from a resident model", most, resident)
	if lines != 12 || most > 2 || most < 1 {
		t.Fatalf("%d epochs logged, at most %d models in memory; want 12 and <= 2", lines, most)
	}
}
