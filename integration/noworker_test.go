package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// With every worker stopped mid-sweep (a GPU box rebooting): `starter
// status` shows each combination's last known state within 5 s, `starter
// pause` returns within 10 s saying when it applies; a worker started
// again finds the sweep paused (nothing trains, and the epoch whose worker
// died is not failed), and `resume` completes it.
func TestControlAndStatusWithNoWorker(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-noworker"
	w := startWorker(t, tq, store)
	spec := rewriteHeartbeat(t, writeSpec(t, specYAML("noworker", "32", 6400)), 20)
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	id, child := "sweep-noworker", "sweep-noworker/smallcnn@32"
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "mid_e*.json")
	waitFor(t, "training to start", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	w.kill9(t)

	t0 := time.Now()
	out, err := starter(t, tq, store, "status", "--id", id)
	if took := time.Since(t0); err != nil || took > 5*time.Second || !strings.Contains(out, "no worker answered") || !strings.Contains(out, "smallcnn@32") {
		t.Fatalf("status with no worker (%v): %v\n%s", took, err, out)
	}
	t.Logf("status with no worker, in %v:\n%s", time.Since(t0), out)
	t0 = time.Now()
	out, err = starter(t, tq, store, "pause", "--id", id)
	if took := time.Since(t0); err != nil || took > 10*time.Second || !strings.Contains(out, "applies when a worker returns") {
		t.Fatalf("pause with no worker (%v): %v\n%s", took, err, out)
	}

	startWorker(t, tq, store)
	ctx := context.Background()
	progress := func() sweep.Outcome { return outcomeOf(t, c, child) }
	waitFor(t, "the combination to be paused with no epoch running", 2*time.Minute, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, child, "")
		return err == nil && len(d.PendingActivities) == 0 && progress().Status == sweep.Paused
	})
	n := len(glob(t, mids))
	progress() // a round trip through the worker: nothing trains meanwhile
	if o := progress(); o.Status != sweep.Paused || len(glob(t, mids)) != n {
		t.Fatalf("after a worker returned: %s, %d checkpoints then %d", o.Status, n, len(glob(t, mids)))
	}
	if out, err := starter(t, tq, store, "resume", "--id", id); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	p := result(t, c, id, 5*time.Minute)
	if o := p.Combos[0]; o.Status != sweep.Completed || o.EpochsDone != 2 {
		t.Fatalf("after resume: %s (%s) with %d epochs", o.Status, o.Reason, o.EpochsDone)
	}
}
