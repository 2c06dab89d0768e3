package workflows

import (
	"log/slog"
	"os"
	"testing"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Histories recorded from real default sweeps (make demo) must replay
// against the current workflow code: a change that breaks them needs
// workflow.GetVersion, or running sweeps would fail on deploy.
func TestReplayRecordedHistories(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(Sweep)
	r.RegisterWorkflow(Combination)
	logger := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	for _, tc := range []struct{ file, id string }{
		{"testdata/sweep_history.json", "sweep-default"},
		{"testdata/combination_history.json", "sweep-default/smallcnn@16"},
		// Recorded after the durability changes (claims, children that
		// outlive a run, waiting for their cancellation).
		{"testdata/sweep_history_v2.json", "sweep-default"},
		{"testdata/combination_history_v2.json", "sweep-default/smallcnn@16"},
		// Recorded after the epoch-overhead and resolution-science changes:
		// sticky epochs (two of them fell back to the shared queue: the
		// one worker was busy), test-resolution evaluation.
		{"testdata/sweep_history_v3.json", "sweep-default"},
		{"testdata/combination_history_v3.json", "sweep-default/smallcnn@16"},
		// Recorded after the lifecycle changes (progress by seed, children
		// reconciled, control that meets a timed-out attempt).
		{"testdata/sweep_history_v4.json", "sweep-default"},
		{"testdata/combination_history_v4.json", "sweep-default/smallcnn@16"},
		// Recorded with MLflow tracking on (the real server killed for a
		// minute mid-sweep: syncs retried, the sweep caught up at its end).
		{"testdata/sweep_history_v5.json", "sweep-default"},
		{"testdata/combination_history_v5.json", "sweep-default/smallcnn@16"},
		// Recorded after the trust changes: Prepare heartbeats and stops on
		// a pause (prepare-heartbeats), a lost worker's downtime counted as
		// waiting (downtime-is-waiting).
		{"testdata/sweep_history_v6.json", "sweep-default"},
		{"testdata/combination_history_v6.json", "sweep-default/smallcnn@16"},
		// Recorded by the version whose sweep keeps a ledger (its result
		// carries counts, the spec and its order; no command changed).
		{"testdata/sweep_history_v7.json", "sweep-default"},
		{"testdata/combination_history_v7.json", "sweep-default/smallcnn@16"},
	} {
		f, err := os.Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		// Child workflow IDs derive from the sweep's own ID: replay under it.
		err = r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{
			OriginalExecution: workflow.Execution{ID: tc.id, RunID: "recorded"},
		})
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
	}
}
