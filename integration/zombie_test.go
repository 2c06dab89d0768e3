package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

const zombieSpec = `name: zombie
models: [smallcnn]
resolutions: [32]
epochs: 2
data: fashion-mnist
train_limit: 6400
val_limit: 500
seed: 3
max_parallel: 1
hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: cosine, crop_padding: 2, flip: true}
checkpoint: {every_steps: 0, every_seconds: 0}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 5}
`

// 12.3: a worker frozen (SIGSTOP) mid-epoch, before its first checkpoint of
// that epoch (the spec takes none inside epochs, so the frozen attempt has
// stored nothing of epoch 1), past the heartbeat timeout; another worker (another thread
// count, so other numbers) finishes that epoch and the next; then the
// frozen one wakes. The sweep completes with the uninterrupted run's
// weights, every stored checkpoint verifies, and the woken attempt stores
// nothing. On the file store and on S3.
func TestFrozenWorkerThatWakesStoresNothing(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, zombieSpec)
	want := referenceRun(t, c, spec, "zombie")
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			storeURL := "file://" + dir
			if backend == "s3" {
				srv := s3test.Start(t, dir)
				srv.Env(t)
				srv.CreateBucket(t, "zombie")
				storeURL = "s3://zombie/ck"
			}
			tq := "tq-zombie-" + backend
			id := "sweep-zombie-" + backend
			child := id + "/smallcnn@32"
			zlog, _ := os.CreateTemp(t.TempDir(), "zombie-*.log")
			zombie := startWorkerWithEnv(t, zlog, []string{"RESOMAP_TASK_QUEUE=" + tq, "RESOMAP_STORE=" + storeURL}, "--threads", "1")
			if out, err := starter(t, tq, dir, "--sweep", spec, "--id", id); err != nil {
				t.Fatalf("starter: %v\n%s", err, out)
			}
			waitFor(t, "the first steps of epoch 1", 2*time.Minute, func() bool {
				hb, _ := heartbeatOf(c, child)
				return hb.Done >= 3 && hb.Key == ""
			})
			if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { zombie.cmd.Process.Signal(syscall.SIGCONT) })
			wlog, _ := os.CreateTemp(t.TempDir(), "worker-*.log")
			startWorkerWithEnv(t, wlog, []string{"RESOMAP_TASK_QUEUE=" + tq, "RESOMAP_STORE=" + storeURL})
			p := result(t, c, id, 5*time.Minute)
			if o := p.Combos[0]; o.Status != sweep.Completed {
				t.Fatalf("%s (%s)", o.Status, o.Reason)
			}
			zombie.cmd.Process.Signal(syscall.SIGCONT)
			waitFor(t, "the woken attempt to give up", time.Minute, func() bool {
				b, _ := os.ReadFile(zlog.Name())
				return strings.Contains(string(b), "superseded") || strings.Contains(string(b), "not found")
			})
			checkEverythingVerifies(t, storeURL)
			root := dir
			if backend == "s3" {
				root = filepath.Join(dir, "zombie", "ck") // versitygw's posix layout
			}
			if got := finalWeights(t, root, "32"); string(got) != string(want) {
				t.Error("final weights differ from the uninterrupted run")
			}
		})
	}
}

// checkEverythingVerifies loads every checkpoint record in a store.
func checkEverythingVerifies(t *testing.T, storeURL string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(ctx, "runs/")
	if err != nil {
		t.Fatal(err)
	}
	repo := checkpoint.Repo{Store: st}
	n := 0
	for _, in := range infos {
		if _, ok := checkpoint.ParseKey(in.Key); !ok {
			continue
		}
		n++
		if _, err := repo.Load(ctx, in.Key); err != nil {
			t.Errorf("stored checkpoint does not verify: %v", err)
		}
	}
	if n == 0 {
		t.Error(fmt.Sprintf("no checkpoints in %s", storeURL))
	}
}
