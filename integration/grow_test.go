package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// A sweep grows while it runs (`starter add` on a real dev server): the
// added combination trains, the running one is not disturbed, the sweep
// ends when both have and its report shows the whole grid; added to once
// finished, it starts again and trains only what is new.
func TestStarterAddGrowsASweep(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-grow"
	startWorker(t, tq, store)
	spec := writeSpec(t, specYAML("grow", "16", 12800)) // long enough to be added to while it runs
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "16", "mid_e*.json")
	waitFor(t, "16 px to train", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	// What makes no sense is refused while it runs, as at a start.
	if out, err := starter(t, tq, store, "add", "--sweep", spec, "--resolutions", "24", "--models", "alexnet"); err == nil || !strings.Contains(out, `unknown model "alexnet"`) {
		t.Errorf("adding an unknown model to the running sweep: %v\n%s", err, out)
	}
	out, err := starter(t, tq, store, "add", "--sweep", spec, "--resolutions", "24")
	if err != nil || !strings.Contains(out, "grew by 1 combinations: smallcnn@24") {
		t.Fatalf("add to the running sweep: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-grow", 10*time.Minute)
	if len(p.Combos) != 2 {
		t.Fatalf("%d combinations, want 2", len(p.Combos))
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.EpochsDone != 2 || len(o.Resumes) > 0 {
			t.Errorf("%s: %s, %d epochs, resumed %v", o.ID(), o.Status, o.EpochsDone, o.Resumes)
		}
	}
	dir := t.TempDir()
	if out, err := starter(t, tq, store, "report", "--sweep", "grow", "--out", dir); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "results.csv"))
	if !strings.Contains(string(csv), "smallcnn,cnn,16,completed") || !strings.Contains(string(csv), "smallcnn,cnn,24,completed") {
		t.Errorf("the report does not show the whole grid:\n%s", csv)
	}

	out, err = starter(t, tq, store, "add", "--sweep", spec, "--resolutions", "32")
	if err != nil || !strings.Contains(out, "starting it again with 1 more combinations (smallcnn@32)") {
		t.Fatalf("add to the finished sweep: %v\n%s", err, out)
	}
	p = result(t, c, "sweep-grow", 10*time.Minute)
	want := map[int]sweep.Status{16: sweep.Skipped, 24: sweep.Skipped, 32: sweep.Completed}
	for _, o := range p.Combos {
		if o.Status != want[o.Resolution] {
			t.Errorf("after the restart %s: %s (%s), want %s", o.ID(), o.Status, o.Reason, want[o.Resolution])
		}
	}
	if len(p.Combos) != 3 {
		t.Errorf("%d combinations after the restart, want 3", len(p.Combos))
	}
	if out, err := starter(t, tq, store, "add", "--sweep", spec, "--models", "alexnet"); err == nil || !strings.Contains(out, `unknown model "alexnet"`) {
		t.Errorf("adding an unknown model: %v\n%s", err, out)
	}
}
