package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// finalWeights reads a completed combination's exported final weights.
func finalWeights(t *testing.T, storeDir, res string) []byte {
	t.Helper()
	files := glob(t, filepath.Join(storeDir, "runs", "*", "cnn", "smallcnn", res, "final_model.safetensors"))
	if len(files) != 1 {
		t.Fatalf("final_model in %s: %v", storeDir, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// referenceRun trains a spec without interruption and returns its final
// weights.
func referenceRun(t *testing.T, c client.Client, spec, name string) []byte {
	t.Helper()
	store, tq := t.TempDir(), "tq-ref-"+name
	startWorker(t, tq, store)
	if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-ref-"+name); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	if p := result(t, c, "sweep-ref-"+name, 5*time.Minute); p.Combos[0].Status != sweep.Completed {
		t.Fatalf("reference: %+v", p.Combos[0])
	}
	return finalWeights(t, store, "32")
}

// heartbeatOf is the last heartbeat of a combination's running epoch and
// its attempt (attempt 0: no epoch running).
func heartbeatOf(c client.Client, childID string) (hb workflows.Heartbeat, attempt int32) {
	d, err := c.DescribeWorkflowExecution(context.Background(), childID, "")
	if err != nil {
		return hb, 0
	}
	for _, pa := range d.PendingActivities {
		attempt = pa.Attempt
		if pa.HeartbeatDetails != nil {
			converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &hb)
		}
	}
	return hb, attempt
}

// phaseOf is the heartbeat phase of a combination's running epoch ("" if none).
func phaseOf(c client.Client, childID string) string {
	hb, _ := heartbeatOf(c, childID)
	return hb.Phase
}

// 12.1: a pause and a resume 0.1 s apart, sweep-wide and on one combination,
// before the epoch activity starts, mid-epoch and at the end of an epoch
// (validating or saving): every combination completes with the weights of
// an uninterrupted run.
func TestQuickPauseResumeAtAnyMomentLosesNothing(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, specYAML("quick", "32", 3200))
	want := referenceRun(t, c, spec, "quick")
	moments := []struct {
		name string
		wait func(store, child string) bool
	}{
		{"before the activity starts", func(string, string) bool { return true }},
		{"mid-epoch", func(store, _ string) bool {
			return len(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "mid_e0001_s*.json"))) > 0
		}},
		{"at the end of an epoch", func(store, child string) bool {
			ph := phaseOf(c, child)
			return ph == "validating" || ph == trainer.PhaseSavingCheckpoint ||
				len(glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "32", "epoch_0001.json"))) > 0
		}},
	}
	for i, m := range moments {
		for _, target := range []string{"sweep", "combination"} {
			if i == 0 && target == "combination" {
				continue // the combination's workflow may not exist yet
			}
			t.Run(m.name+"/"+target, func(t *testing.T) {
				store, tq := t.TempDir(), "tq-quick"
				id := "sweep-quick-" + time.Now().Format("150405.000000")
				child := workflows.ChildID(id, "smallcnn@32")
				startWorker(t, tq, store)
				if out, err := starter(t, tq, store, "--sweep", spec, "--id", id); err != nil {
					t.Fatalf("starter: %v\n%s", err, out)
				}
				waitFor(t, m.name, 3*time.Minute, func() bool { return m.wait(store, child) })
				to := map[string]string{"sweep": id, "combination": child}[target]
				ctx := context.Background()
				if err := c.SignalWorkflow(ctx, to, "", workflows.SignalPause, nil); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond) // the timing under test, not a synchronisation
				if err := c.SignalWorkflow(ctx, to, "", workflows.SignalResume, nil); err != nil {
					t.Fatal(err)
				}
				p := result(t, c, id, 5*time.Minute)
				if o := p.Combos[0]; o.Status != sweep.Completed {
					t.Fatalf("%s (%s)", o.Status, o.Reason)
				}
				if !bytes.Equal(finalWeights(t, store, "32"), want) {
					t.Error("final weights differ from the uninterrupted run")
				}
			})
		}
	}
}

// Two sweeps that share a config, started at once with a worker each: one
// trains it, the other waits and adopts its result; every epoch is
// trained once.
func TestTwoSweepsShareOneTraining(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-shared"
	w1, w2 := startWorker(t, tq, store), startWorker(t, tq, store)
	for _, name := range []string{"share-a", "share-b"} {
		spec := writeSpec(t, specYAML(name, "32", 3200))
		if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-"+name); err != nil {
			t.Fatalf("starter: %v\n%s", err, out)
		}
	}
	a := result(t, c, "sweep-share-a", 5*time.Minute).Combos[0]
	b := result(t, c, "sweep-share-b", 5*time.Minute).Combos[0]
	trained, adopted := a, b
	if a.Status == sweep.Skipped {
		trained, adopted = b, a
	}
	if trained.Status != sweep.Completed || adopted.Status != sweep.Skipped {
		t.Fatalf("statuses %s (%s) and %s (%s): want one completed and one skipped", a.Status, a.Reason, b.Status, b.Reason)
	}
	epochs := 0
	for _, w := range []*workerProc{w1, w2} {
		b, _ := os.ReadFile(w.log.Name())
		epochs += strings.Count(string(b), `msg="epoch done"`)
	}
	if epochs != 2 {
		t.Errorf("%d epochs trained for one 2-epoch config", epochs)
	}
}
