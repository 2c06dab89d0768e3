package activities_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/workflows"
)

// An S3 server frozen mid-epoch (SIGSTOP: it accepts connections and
// answers nothing) stalls the attempt's checkpoint uploads; the attempt
// notices that nothing advances, heartbeats why and stops heartbeating, so
// it is given up (a heartbeat timeout) within about twice the heartbeat
// timeout, not at its start-to-close timeout.
func TestFrozenStoreGivesTheAttemptUp(t *testing.T) {
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "stall")
	st, err := store.Open(context.Background(), "s3://stall/p")
	if err != nil {
		t.Fatal(err)
	}
	acts, p, _ := setupOn(t, "fashion-mnist", st)
	// 1,000 steps: the epoch outlasts the freeze. (With 200 it could end
	// unloaded before the SDK sent a heartbeat naming a stored checkpoint,
	// throttled to one per 0.8 heartbeat timeouts, so nothing froze.)
	p.Config.TrainLimit = 32000
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(5 * time.Minute)
	env.RegisterActivity(acts)
	env.RegisterWorkflow(onceWithHeartbeat)
	var mu sync.Mutex
	var frozenAt, lastAt time.Time
	var last workflows.Heartbeat
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		details.Get(&last)
		lastAt = time.Now()
		switch {
		case frozenAt.IsZero() && last.Key != "": // a checkpoint is stored: freeze
			srv.Freeze(t)
			frozenAt = time.Now()
		case strings.HasPrefix(last.Phase, "stalled"):
			// Given up: the store may wake (the attempt stores nothing
			// more that counts; the SDK's test server reports its
			// timeout once it returns).
			srv.Thaw(t)
		}
	})
	env.ExecuteWorkflow(onceWithHeartbeat, workflows.ActivityTrainEpoch, 2*time.Second, workflows.TrainEpochInput{Prepared: p, Epoch: 1, CheckpointSteps: 10})
	err = env.GetWorkflowError()
	mu.Lock()
	defer mu.Unlock()
	if frozenAt.IsZero() {
		t.Fatalf("no checkpoint was stored before the end (%v)", err)
	}
	// The server gives the attempt up a heartbeat timeout after its last
	// heartbeat.
	given := lastAt.Add(2 * time.Second).Sub(frozenAt)
	// Ended by the server's heartbeat timeout, or by the attempt itself
	// once the store woke: given up either way, and retryable.
	var timeout *temporal.TimeoutError
	var appErr *temporal.ApplicationError
	if !errors.As(err, &timeout) && !(errors.As(err, &appErr) && !appErr.NonRetryable() && strings.Contains(err.Error(), "no progress")) {
		t.Fatalf("with the store frozen: %v, want the attempt given up", err)
	}
	if !strings.HasPrefix(last.Phase, "stalled: no progress") {
		t.Errorf("last heartbeat says %q, want why it stalled", last.Phase)
	}
	// Training goes on while a background upload hangs (up to the next
	// checkpoint, 10 steps), then the stall bound, then the timeout.
	if given > 12*time.Second {
		t.Errorf("given up %v after the store froze, want about twice the 2 s heartbeat timeout after training stops", given)
	}
	t.Logf("given up %v after the freeze: %q", given, last.Phase)
}
