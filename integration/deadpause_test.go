package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// kill -9 of the worker running an epoch, then `starter pause` within the
// heartbeat timeout: the combination is paused, not failed (the dead
// attempt ends in a heartbeat timeout, not a cancel), no epoch trains while
// paused (no checkpoint appears), and resume completes it with the
// uninterrupted run's weights. For a first epoch (on the shared queue) and
// a later one (on the dead worker's own queue, which must not send it on
// to another worker while paused).
func TestPauseMeetsADeadWorkerOnARealServer(t *testing.T) {
	c := dial(t)
	spec := rewriteHeartbeat(t, writeSpec(t, specYAML("deadpause", "32", 9600)), 15)
	refStore := t.TempDir()
	startWorker(t, "tq-deadpause-ref", refStore)
	if out, err := starter(t, "tq-deadpause-ref", refStore, "--sweep", spec, "--id", "sweep-deadpause-ref"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	if o := result(t, c, "sweep-deadpause-ref", 5*time.Minute).Combos[0]; o.Status != sweep.Completed {
		t.Fatalf("reference run: %s (%s)", o.Status, o.Reason)
	}
	for _, epoch := range []int{1, 2} {
		t.Run(fmt.Sprintf("epoch %d", epoch), func(t *testing.T) {
			store, tq, id := t.TempDir(), fmt.Sprintf("tq-deadpause-%d", epoch), fmt.Sprintf("sweep-deadpause-%d", epoch)
			w := startWorker(t, tq, store)
			if out, err := starter(t, tq, store, "--sweep", spec, "--id", id); err != nil {
				t.Fatalf("starter: %v\n%s", err, out)
			}
			records := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "*.json")
			mid := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", fmt.Sprintf("mid_e%04d_s*.json", epoch))
			waitFor(t, fmt.Sprintf("training in epoch %d", epoch), 3*time.Minute, func() bool { return len(glob(t, mid)) > 0 })
			w.kill9(t)
			startWorker(t, tq, store) // runs the workflows; the epoch's attempt is still the dead one's
			if out, err := starter(t, tq, store, "pause", "--id", id); err != nil {
				t.Fatalf("pause: %v\n%s", err, out)
			}
			child := id + "/smallcnn@32"
			ctx := context.Background()
			progress := func() sweep.Outcome { return outcomeOf(t, c, child) }
			waitFor(t, "the dead attempt to end", time.Minute, func() bool {
				d, err := c.DescribeWorkflowExecution(ctx, child, "")
				return err == nil && len(d.PendingActivities) == 0
			})
			n := len(glob(t, records))
			if o := progress(); o.Status != sweep.Paused {
				t.Fatalf("after the dead attempt ended: %s (%s), want paused", o.Status, o.Reason)
			}
			progress() // a round trip through the worker: nothing trained meanwhile
			if m := len(glob(t, records)); m != n {
				t.Fatalf("%d checkpoints stored while paused", m-n)
			}
			if out, err := starter(t, tq, store, "resume", "--id", id); err != nil {
				t.Fatalf("resume: %v\n%s", err, out)
			}
			if o := result(t, c, id, 5*time.Minute).Combos[0]; o.Status != sweep.Completed {
				t.Fatalf("after resume: %s (%s)", o.Status, o.Reason)
			}
			for _, f := range []string{"final_model.safetensors", "final_model.optim.safetensors"} {
				want, err1 := os.ReadFile(glob(t, filepath.Join(refStore, "runs", "*", "cnn", "smallcnn", "32", f))[0])
				got, err2 := os.ReadFile(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", f))[0])
				if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
					t.Errorf("%s differs from the uninterrupted run (%v %v)", f, err1, err2)
				}
			}
		})
	}
}
