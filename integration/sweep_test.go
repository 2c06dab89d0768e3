package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

func specYAML(name string, resolutions string, trainLimit int) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [%s]
epochs: 2
data: fashion-mnist
allow_upsampling: true
train_limit: %d
val_limit: 500
seed: 3
max_parallel: 1
hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: cosine, crop_padding: 2, flip: true}
checkpoint: {every_steps: 10}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 5}
`, name, resolutions, trainLimit)
}

func result(t *testing.T, c client.Client, id string, timeout time.Duration) workflows.SweepProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var p workflows.SweepProgress
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &p); err != nil {
		t.Fatalf("sweep %s: %v", id, err)
	}
	return p
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// 1 and 4: a tiny sweep end to end through the starter binary; a second
// starter of the same sweep trains nothing twice.
func TestTinySweepEndToEndAndNothingTwice(t *testing.T) {
	storeDir, tq := t.TempDir(), "tq-e2e"
	startWorker(t, tq, storeDir)
	spec := writeSpec(t, specYAML("e2e", "16, 24", 640))
	out, err := starter(t, tq, storeDir, "--sweep", spec, "--wait")
	if err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	for _, want := range []string{"smallcnn  16          completed  2/2", "smallcnn  24          completed  2/2",
		"report: reports/e2e/index.html (14 files", "| smallcnn | 24 | completed | 2/2 |", "Web UI: http://localhost:8233/namespaces/default/workflows/sweep-e2e"} {
		if !strings.Contains(out, want) {
			t.Errorf("starter output lacks %q:\n%s", want, out)
		}
	}
	finals := glob(t, filepath.Join(storeDir, "runs", "*", "cnn", "smallcnn", "*", "final_model.safetensors"))
	if len(finals) != 2 {
		t.Fatalf("%d final models stored, want 2", len(finals))
	}
	// 13.3: each best checkpoint evaluated at the test resolutions (16, 24
	// and 1.25 x 24 = 30 px), at its own exactly as its training measured.
	for _, o := range result(t, dial(t), "sweep-e2e", time.Minute).Combos {
		var own *sweep.TestResult
		for i, tr := range o.TestResults {
			if tr.Resolution == o.Resolution {
				own = &o.TestResults[i]
			}
		}
		if len(o.TestResults) != 3 || own == nil || own.ValAcc != o.BestValAcc {
			t.Errorf("%s: test results %+v; best val acc %v", o.ID(), o.TestResults, o.BestValAcc)
		}
	}
	before := glob(t, filepath.Join(storeDir, "runs", "*", "*", "*", "*", "*"))

	out, err = starter(t, tq, storeDir, "--sweep", spec, "--wait")
	if err != nil {
		t.Fatalf("second starter: %v\n%s", err, out)
	}
	if strings.Count(out, "skipped") < 2 || strings.Contains(out, "completed  2/2") {
		t.Errorf("second run of the same sweep did not skip both combinations:\n%s", out)
	}
	after := glob(t, filepath.Join(storeDir, "runs", "*", "*", "*", "*", "*"))
	if len(after) != len(before) {
		t.Errorf("second run wrote checkpoints: %d files before, %d after", len(before), len(after))
	}

	// Bad input changes nothing and says why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pause", "--id", "sweep-e2e"}, "already finished"},
		{[]string{"--sweep", "no-such-sweep"}, `unknown sweep "no-such-sweep"`},
		{[]string{"--sweep", spec, "--models", "alexnet"}, `unknown model "alexnet"`},
		{[]string{"--sweep", spec, "--resolutions", ""}, "resolutions: empty list"},
		{[]string{"status", "--id", "sweep-missing"}, "no sweep with workflow ID sweep-missing"},
	} {
		out, err := starter(t, tq, storeDir, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("starter %v: err=%v, output %q; want an error saying %q", tc.args, err, out, tc.want)
		}
	}
}

// 2: kill -9 the worker in the middle of an epoch; a new worker resumes
// from the last checkpoint, at its step, and ends with the same weights as
// an uninterrupted run.
func TestKilledWorkerResumesFromLastCheckpointBitForBit(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, specYAML("kill", "32", 6400))

	refStore := t.TempDir()
	startWorker(t, "tq-ref", refStore)
	if out, err := starter(t, "tq-ref", refStore, "--sweep", spec, "--id", "sweep-kill-ref"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	ref := result(t, c, "sweep-kill-ref", 5*time.Minute)
	if ref.Combos[0].Status != sweep.Completed {
		t.Fatalf("reference run: %+v", ref.Combos[0])
	}

	store := t.TempDir()
	w := startWorker(t, "tq-kill", store)
	if out, err := starter(t, "tq-kill", store, "--sweep", spec, "--id", "sweep-kill"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "mid_e0002_s*.json")
	waitFor(t, "a mid-epoch checkpoint in epoch 2", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	w.kill9(t)
	killedAt := time.Now()
	found := glob(t, mids)
	last := found[len(found)-1] // names sort by step
	var step int
	fmt.Sscanf(filepath.Base(last), "mid_e0002_s%d.json", &step)

	startWorker(t, "tq-kill", store)
	p := result(t, c, "sweep-kill", 5*time.Minute)
	o := p.Combos[0]
	if o.Status != sweep.Completed {
		t.Fatalf("after the kill: %s (%s)", o.Status, o.Reason)
	}
	// The epoch is retried on the dead worker's own queue, which times out,
	// then sent to any worker: either way it continues from the last
	// checkpoint.
	var resumed *sweep.Resume
	for i := range o.Resumes {
		if o.Resumes[i].Epoch == 2 {
			resumed = &o.Resumes[i]
		}
	}
	if resumed == nil || resumed.Step != step {
		t.Fatalf("resumes %+v; want epoch 2 continued at step %d (the last checkpoint before the kill)", o.Resumes, step)
	}
	t.Logf("killed in epoch 2 after the checkpoint at step %d; resumed at step %d (%s); sweep done %s after the kill", step, resumed.Step, resumed.Reason, time.Since(killedAt).Round(time.Millisecond))
	for _, f := range []string{"final_model.safetensors", "final_model.optim.safetensors"} {
		want, err1 := os.ReadFile(glob(t, filepath.Join(refStore, "runs", "*", "cnn", "smallcnn", "32", f))[0])
		got, err2 := os.ReadFile(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", f))[0])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from the uninterrupted run", f)
		}
	}
}

// 3: pause, resume and cancel with signals from a client.
func TestPauseResumeCancelBySignals(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-signals"
	startWorker(t, tq, store)
	// Epochs of seconds: a cancel reaches a running activity with its next
	// heartbeat, which the SDK throttles to 0.8 x the heartbeat timeout.
	spec := writeSpec(t, specYAML("signals", "32", 60000))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	id := "sweep-signals"
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "mid_e0001_s*.json")
	waitFor(t, "training to start", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	ctx := context.Background()
	if err := c.SignalWorkflow(ctx, id, "", workflows.SignalPause, nil); err != nil {
		t.Fatal(err)
	}
	child := id + "/smallcnn@32"
	waitFor(t, "the running epoch to checkpoint and stop", time.Minute, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, child, "")
		return err == nil && len(d.PendingActivities) == 0
	})
	progress := func() sweep.Outcome { return outcomeOf(t, c, child) }
	if o := progress(); o.Status != sweep.Paused {
		t.Fatalf("after pause: %s", o.Status)
	}
	n := len(glob(t, mids))
	// While paused nothing trains: the checkpoint count stays put across
	// a query round-trip to the worker.
	progress()
	if len(glob(t, mids)) != n {
		t.Fatal("checkpoints were written while paused")
	}
	if err := c.SignalWorkflow(ctx, id, "", workflows.SignalResume, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "training to continue after resume", 2*time.Minute, func() bool {
		return len(glob(t, mids)) > n || len(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "epoch_0001.json"))) > 0
	})
	if err := c.SignalWorkflow(ctx, id, "", workflows.SignalCancel, nil); err != nil {
		t.Fatal(err)
	}
	p := result(t, c, id, 2*time.Minute)
	if !p.Cancelled || p.Combos[0].Status != sweep.Cancelled {
		t.Fatalf("after cancel: cancelled=%v, combination %s", p.Cancelled, p.Combos[0].Status)
	}
	// Pausing the finished sweep is refused and changes nothing.
	if out, err := starter(t, tq, store, "pause", "--id", id); err == nil || !strings.Contains(out, "already finished") {
		t.Fatalf("pausing a finished sweep: %v %s", err, out)
	}
}

// SIGTERM: the worker stops taking work, the running epoch checkpoints, the
// worker exits cleanly, and another worker continues from that checkpoint
// without waiting for a heartbeat timeout.
func TestSigtermCheckpointsAndAnotherWorkerContinues(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-sigterm"
	w := startWorker(t, tq, store)
	spec := writeSpec(t, strings.Replace(specYAML("sigterm", "32", 25600), "every_steps: 10", "every_steps: 1000", 1))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	child := "sweep-sigterm/smallcnn@32"
	// A step trained, not just a heartbeat: the first heartbeat names
	// the attempt's phase before any step (a SIGTERM then checkpoints
	// step 0, which proves nothing; CI hit it). Heartbeats reach the
	// server every 2.4 s at most (0.8 x the 3 s timeout), so the epoch is
	// long enough (25,600 images, ~7 s) to be seen in progress.
	waitFor(t, "training progress", 3*time.Minute, func() bool {
		hb, _ := heartbeatOf(c, child)
		return hb.Done > 0
	})
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("worker did not exit cleanly on SIGTERM: %v", err)
	}
	// With checkpoints every 1000 steps, the only mid-epoch checkpoint is
	// the one written on shutdown.
	mids := glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "mid_e0001_s*.json"))
	if len(mids) != 1 {
		t.Fatalf("%d mid-epoch checkpoints after SIGTERM, want the shutdown one", len(mids))
	}
	var step int
	fmt.Sscanf(filepath.Base(mids[0]), "mid_e0001_s%d.json", &step)
	startWorker(t, tq, store)
	p := result(t, c, "sweep-sigterm", 5*time.Minute)
	o := p.Combos[0]
	if o.Status != sweep.Completed {
		t.Fatalf("%s: %s", o.Status, o.Reason)
	}
	var resumed bool
	for _, r := range o.Resumes {
		if r.Attempt > 1 && r.Epoch == 1 && r.Step == step {
			resumed = true
		}
	}
	if !resumed || step == 0 {
		t.Fatalf("resumes %+v; want epoch 1 continued at step %d", o.Resumes, step)
	}
}
