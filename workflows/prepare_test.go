package workflows

import (
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// prepareRun runs one combination whose Prepare takes 30 minutes, with
// the signals given at their times, and returns its outcome, the status
// and epochs trained an hour in, and the fake. (The test environment
// finishes a mocked activity's call after its delay even when the
// workflow cancelled it: the workflow no longer waits for it.)
func prepareRun(t *testing.T, paused bool, signals map[time.Duration]string) (o sweep.Outcome, status sweep.Status, epochs int, f *fakeTraining) {
	t.Helper()
	env := newEnv(t)
	f = newFake()
	f.prepareDelay = 30 * time.Minute
	f.register(env, 10*time.Minute)
	for at, sig := range signals {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(sig, nil) }, at)
	}
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err != nil {
			t.Error(err)
			return
		}
		var o sweep.Outcome
		v.Get(&o)
		status = o.Status
		f.mu.Lock()
		epochs = len(f.calls)
		f.mu.Unlock()
	}, time.Hour)
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}, Paused: paused})
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	return o, status, epochs, f
}

// A pause stops a running Prepare (a download): paused, nothing runs; the
// resume prepares again and the training completes, the paused time
// counted as waiting, not preparing.
func TestPauseStopsPrepareAndResumePreparesAgain(t *testing.T) {
	o, status, prepares, f := prepareRun(t, false, map[time.Duration]string{10 * time.Minute: SignalPause, 2 * time.Hour: SignalResume})
	if status != sweep.Paused || prepares != 0 {
		t.Errorf("an hour in: %s with %d epochs trained; want paused and none", status, prepares)
	}
	if o.Status != sweep.Completed || f.prepares != 2 || len(f.calls) != 3 {
		t.Fatalf("after resume: %s, %d Prepare calls (want the stopped one and one more), %d epochs", o.Status, f.prepares, len(f.calls))
	}
	if o.PrepareSeconds != 40*60 || o.WaitSeconds < 110*60 {
		t.Errorf("prepare %.0f s (want 10 + 30 minutes), waiting %.0f s (want the 110 paused minutes)", o.PrepareSeconds, o.WaitSeconds)
	}
}

// A combination started paused does not prepare (download) until resumed.
func TestStartedPausedPreparesOnlyAfterResume(t *testing.T) {
	o, status, prepares, f := prepareRun(t, true, map[time.Duration]string{2 * time.Hour: SignalResume})
	if status != sweep.Paused || prepares != 0 {
		t.Errorf("an hour in: %s with %d epochs trained; want paused and none", status, prepares)
	}
	if o.Status != sweep.Completed || f.prepares != 1 || o.WaitSeconds < 2*3600 {
		t.Errorf("after resume: %s, %d Prepare calls, waiting %.0f s", o.Status, f.prepares, o.WaitSeconds)
	}
}

// A cancel stops a running Prepare and ends the combination cancelled,
// with no epoch trained.
func TestCancelStopsPrepare(t *testing.T) {
	o, _, _, f := prepareRun(t, false, map[time.Duration]string{10 * time.Minute: SignalCancel})
	if o.Status != sweep.Cancelled || o.Reason != "cancelled by signal" || len(f.calls) != 0 || o.PrepareSeconds != 600 {
		t.Errorf("cancelled while preparing: %s (%s), %d epochs, prepared %.0f s (want the 10 minutes)", o.Status, o.Reason, len(f.calls), o.PrepareSeconds)
	}
}
