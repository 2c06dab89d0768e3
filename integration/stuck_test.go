package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// A worker whose libtorch call runs past --stuck-timeout exits with code 75
// (for its supervisor to restart it) instead of holding its slot for ever;
// the activity is retried by another worker and the sweep completes. A real
// training step longer than the limit stands in for a hung call: the
// watchdog cannot tell them apart.
func TestStuckWorkerExitsAndAnotherFinishes(t *testing.T) {
	data := twoClassImageFolder(t, 40, 32)
	store, tq := t.TempDir(), "tq-stuck"
	stuck := startWorker(t, tq, store, "--stuck-timeout", "300ms")
	exited := make(chan error, 1)
	go func() { exited <- stuck.cmd.Wait() }()

	spec := writeSpec(t, fmt.Sprintf(`name: stuck
models: [smallcnn]
resolutions: [256]
epochs: 1
data: %s
allow_upsampling: true
seed: 1
hyper: {batch_size: 32, optimizer: sgd, lr: 0.01, momentum: 0.9, schedule: constant}
activity: {heartbeat_timeout_seconds: 5, max_attempts: 3}
`, data))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 75 {
			t.Fatalf("stuck worker ended with %v, want exit code 75", err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the worker with a 300 ms stuck timeout is still running")
	}
	if !logHas(stuck.log.Name(), "libtorch call stuck") {
		t.Fatal("the stuck worker did not say why it exited")
	}

	startWorker(t, tq, store)
	p := result(t, dial(t), "sweep-stuck", 3*time.Minute)
	o := p.Combos[0]
	if o.Status != sweep.Completed {
		t.Fatalf("%s: %s", o.Status, o.Reason)
	}
	retried := false
	for _, r := range o.Resumes {
		retried = retried || r.Attempt > 1
	}
	if !retried {
		t.Fatalf("resumes %+v: want the epoch finished by a later attempt", o.Resumes)
	}
}
