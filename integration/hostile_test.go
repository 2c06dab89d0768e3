package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// A worker handed the three hostile .pth files of issue 30 (a 440-byte
// file declaring a 2^30-float storage, a zero stride expanding 4 floats to
// 2^28, a negative size) by anyone who can start a workflow: each sweep
// ends failed with one line, the worker is the same process throughout
// (it never died nor restarted) and its peak resident memory stays under
// 1.5 GB. The starter refuses each file before starting anything.
func TestHostileWeightsFailTheirSweepsNotTheWorker(t *testing.T) {
	files, err := filepath.Glob("../pretrained/testdata/hostile/*.pth")
	if err != nil || len(files) != 3 {
		t.Fatalf("hostile files: %v %v", files, err)
	}
	store, tq := t.TempDir(), "tq-hostile"
	w := startWorker(t, tq, store)
	c := dial(t)
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("hostile%d", i)
		yaml := specYAML(name, "16", 256) + fmt.Sprintf("init: {weights: %q}\n", abs)
		if out, err := starter(t, tq, store, "--sweep", writeSpec(t, yaml)); exitCode(err) != 2 || !strings.Contains(out, filepath.Base(f)) {
			t.Errorf("starter with %s: exit %d, %s; want exit 2 naming the file", filepath.Base(f), exitCode(err), out)
		}
		spec, err := sweep.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		id := workflows.SweepID(name)
		if _, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: tq}, workflows.Sweep,
			workflows.SweepInput{Spec: spec}); err != nil {
			t.Fatal(err)
		}
		o := result(t, c, id, 2*time.Minute).Combos[0]
		if o.Status != sweep.Failed || strings.Contains(o.Reason, "\n") || !strings.Contains(o.Reason, "not a state dict") ||
			strings.Contains(o.Reason, "retryable") || len(o.Reason) > 400 {
			t.Errorf("%s: %s (%q); want failed, in one short line about its weights", filepath.Base(f), o.Status, o.Reason)
		}
		t.Logf("%s: %s", filepath.Base(f), o.Reason)
	}
	if w.cmd.ProcessState != nil || syscall.Kill(w.cmd.Process.Pid, 0) != nil {
		t.Fatalf("the worker died: %v", w.cmd.ProcessState)
	}
	if peak := peakRSS(t, w.cmd.Process.Pid); peak > 1536<<20 {
		t.Errorf("the worker's peak resident memory: %d MB, want under 1.5 GB", peak>>20)
	} else {
		t.Logf("the worker's peak resident memory: %d MB", peak>>20)
	}
}
