package integration

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// On a real dev server: a finished one-resolution sweep grown by a
// resolution, then by seeds (each `starter add` starts it again with the
// union). Its report counts each training once — the first training is
// both smallcnn@16 and smallcnn@16-seed3 — every row (completed or
// skipped) has its compute hours, time split, best and final models and
// train x test rows, each cell has its two seeds, and the Pareto front is
// that of the union's trainings.
func TestGrownFinishedSweepReportsTheUnion(t *testing.T) {
	c := dial(t)
	store_, tq := t.TempDir(), "tq-union"
	startWorker(t, tq, store_)
	yaml := strings.Replace(specYAML("union", "16", 1600), "epochs: 2", "epochs: 1", 1)
	spec := writeSpec(t, yaml)
	if out, err := starter(t, tq, store_, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	result(t, c, "sweep-union", 5*time.Minute)
	for _, add := range [][]string{{"--resolutions", "24"}, {"--seeds", "2,3"}} {
		out, err := starter(t, tq, store_, append([]string{"add", "--sweep", spec}, add...)...)
		if err != nil || !strings.Contains(out, "starting it again") {
			t.Fatalf("add %v to the finished sweep: %v\n%s", add, err, out)
		}
		waitFor(t, "the sweep to run again", time.Minute, func() bool {
			d, err := c.DescribeWorkflowExecution(context.Background(), "sweep-union", "")
			return err == nil && d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING ||
				err == nil && d.WorkflowExecutionInfo.CloseTime != nil && d.WorkflowExecutionInfo.CloseTime.AsTime().After(time.Now().Add(-time.Minute))
		})
		result(t, c, "sweep-union", 5*time.Minute)
	}
	st, err := store.NewFile(store_)
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Build(context.Background(), st, "union")
	if err != nil {
		t.Fatal(err)
	}
	// The union: 16 and 24 px, seeds 3 (the spec's) and 2.
	if len(r.Rows) != 4 {
		t.Fatalf("%d rows, want 4 (16 and 24 px, seeds 3 and 2):\n%s", len(r.Rows), table(r))
	}
	hashes := map[string]bool{}
	var cost, acc []float64
	for _, x := range r.Rows {
		name := fmt.Sprintf("%s@%d seed %d (%s)", x.Model, x.Resolution, x.Seed, x.Status)
		if hashes[x.ConfigHash] {
			t.Errorf("%s: its training has another row", name)
		}
		hashes[x.ConfigHash] = true
		switch {
		case x.Status != string(sweep.Completed) && x.Status != string(sweep.Skipped):
			t.Errorf("%s: %s", name, x.Reason)
		case x.ComputeHours == nil || x.PerEpoch == nil || x.BestValAcc == nil:
			t.Errorf("%s: compute hours %v, time split %v, accuracy %v", name, x.ComputeHours, x.PerEpoch, x.BestValAcc)
		case x.Keys.Best == "" || x.Keys.Final == "":
			t.Errorf("%s: best model %q, final %q", name, x.Keys.Best, x.Keys.Final)
		case x.Cell == nil || x.Cell.N != 2:
			t.Errorf("%s: its cell's interval %+v, want 2 seeds", name, x.Cell)
		default:
			cost, acc = append(cost, *x.ComputeHours), append(acc, *x.BestValAcc)
		}
	}
	dir := t.TempDir()
	if _, err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	// Every training at every test size of the union (16, 24 and 1.25x 24
	// px), the first one too, which its own sweep tested at 16 and 20.
	tests := readCSV(t, filepath.Join(dir, "test_resolutions.csv"))
	sizes := r.Spec.EffectiveTestResolutions()
	for _, x := range r.Rows {
		for _, size := range sizes {
			found := false
			for _, row := range tests[1:] {
				found = found || row[0] == x.Model && row[1] == fmt.Sprint(x.Resolution) && row[2] == fmt.Sprint(size) && row[3] == fmt.Sprint(x.Seed) && row[4] != ""
			}
			if !found {
				t.Errorf("%s@%d seed %d: no train x test row at %d px (the union's sizes: %v)", x.Model, x.Resolution, x.Seed, size, sizes)
			}
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	front := report.ParetoFront(cost, acc)
	if len(cost) == 4 {
		for _, i := range front {
			x := r.Rows[i]
			if !strings.Contains(string(md), fmt.Sprintf("%s@%d", x.Model, x.Resolution)) {
				t.Errorf("the report's Pareto front leaves out %s@%d seed %d", x.Model, x.Resolution, x.Seed)
			}
		}
	}
	t.Logf("report rows:\n%s", table(r))
}

func table(r *report.Report) string {
	var b strings.Builder
	r.Table(&b)
	return b.String()
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// On a real dev server: a training whose combination workflow is
// terminated while it evaluates at the test resolutions (its epochs all
// stored, its result not), then the sweep started again: it is completed,
// with its best and final models exported, every test resolution
// evaluated, and its compute hours those of the epochs trained before.
func TestTrainingTerminatedWhileEvaluatingIsHealed(t *testing.T) {
	c := dial(t)
	storeDir, tq := t.TempDir(), "tq-heal"
	startWorker(t, tq, storeDir)
	yaml := strings.Replace(specYAML("heal", "16", 1600), "epochs: 2", "epochs: 1", 1)
	yaml = strings.Replace(yaml, "val_limit: 500", "val_limit: 3000\ntest_resolutions: [16, 24, 32, 48]", 1)
	spec := writeSpec(t, yaml)
	if out, err := starter(t, tq, storeDir, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	child := "sweep-heal/smallcnn@16"
	waitFor(t, "the test-resolution evaluation", 3*time.Minute, func() bool {
		d, err := c.DescribeWorkflowExecution(context.Background(), child, "")
		if err != nil {
			return false
		}
		for _, pa := range d.PendingActivities {
			if pa.ActivityType.GetName() == "EvaluateAtResolutions" {
				return true
			}
		}
		return false
	})
	if err := c.TerminateWorkflow(context.Background(), child, "", "terminated while evaluating (the test)"); err != nil {
		t.Fatal(err)
	}
	first := result(t, c, "sweep-heal", 3*time.Minute)
	if o := first.Combos[0]; o.Status == sweep.Completed {
		t.Fatalf("the terminated training completed: %+v", o)
	}
	st, _ := store.NewFile(storeDir)
	idx := results.Index{Store: st}
	if out, err := starter(t, tq, storeDir, "--sweep", spec); err != nil {
		t.Fatalf("starter again: %v\n%s", err, out)
	}
	again := result(t, c, "sweep-heal", 5*time.Minute)
	o := again.Combos[0]
	if o.Status != sweep.Completed || o.Keys.Best == "" || o.Keys.Final == "" || len(o.TestResults) != 4 || o.CarriedEpochs != 1 || o.ComputeHours() <= 0 {
		t.Fatalf("started again: %s (%s), best %q final %q, %d test results, %d carried epochs, %v compute hours",
			o.Status, o.Reason, o.Keys.Best, o.Keys.Final, len(o.TestResults), o.CarriedEpochs, o.ComputeHours())
	}
	rec, _, err := idx.Lookup(context.Background(), o.ConfigHash)
	if err != nil || rec == nil || !rec.Exported() || len(rec.TestResults) != 4 {
		t.Fatalf("its recorded result: %v %+v", err, rec)
	}
	for _, k := range []string{"best_model.safetensors", "final_model.safetensors"} {
		if found := glob(t, filepath.Join(storeDir, "runs", "*", "cnn", "smallcnn", "16", k)); len(found) == 0 {
			t.Errorf("%s not exported", k)
		}
	}
}
