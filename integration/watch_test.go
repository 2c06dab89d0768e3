package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// `starter report --watch` rewrites index.html as results arrive while the
// sweep runs, and ends by itself, with the whole map, when the sweep does.
func TestReportWatchFollowsTheSweep(t *testing.T) {
	c := dial(t)
	store, tq := t.TempDir(), "tq-watch"
	startWorker(t, tq, store)
	spec := writeSpec(t, specYAML("watch", "16, 24", 3200))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	out := t.TempDir()
	watch := exec.Command(filepath.Join(binDir, "starter"), "report", "--sweep", "watch", "--watch", "--watch-every", "200ms", "--out", out)
	watch.Env = env(tq, store)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "watch.log"))
	watch.Stdout, watch.Stderr = logf, logf
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- watch.Wait() }()
	t.Cleanup(func() { watch.Process.Kill() })
	page := filepath.Join(out, "index.html")
	running := func() bool {
		d, err := c.DescribeWorkflowExecution(context.Background(), "sweep-watch", "")
		return err == nil && d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	// While the sweep runs, the page shows the first result and the second
	// combination not yet completed.
	waitFor(t, "index.html with the first result while the sweep runs", 5*time.Minute, func() bool {
		b, err := os.ReadFile(page)
		return err == nil && strings.Count(string(b), `<tr class="completed">`) == 1 && running()
	})
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("report --watch: %v\n%s", err, b)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("report --watch did not end with the sweep")
	}
	if running() {
		t.Fatal("report --watch ended while the sweep runs")
	}
	b, _ := os.ReadFile(page)
	if n := strings.Count(string(b), `<tr class="completed">`); n != 2 {
		t.Errorf("the last index.html shows %d completed rows, want 2", n)
	}
}
