package workflows

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

	"github.com/resomap/resomap/sweep"
)

// fakeTracker stands in for the tracking activities: it records each
// sync's input, and fails every call while down (as a server that is gone:
// retryable) or refuses them (bad credentials: not).
type fakeTracker struct {
	mu       sync.Mutex
	syncs    []TrackInput
	sweeps   []TrackSweepInput
	down     func(now time.Time) bool // nil: up
	refuse   bool
	finished map[string]bool // config hash -> the server has a FINISHED run
	env      *testsuite.TestWorkflowEnvironment
}

func (f *fakeTracker) register(env *testsuite.TestWorkflowEnvironment) {
	f.env = env
	env.OnActivity(a.TrackTraining, mockAny, mockAny).Return(func(_ context.Context, in TrackInput) (TrackOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.fail(); err != nil {
			return TrackOutput{}, err
		}
		f.syncs = append(f.syncs, in)
		return TrackOutput{RunID: "run-" + in.Outcome.ID(), Epochs: in.Outcome.EpochsDone}, nil
	})
	env.OnActivity(a.TrackSweep, mockAny, mockAny).Return(func(_ context.Context, in TrackSweepInput) (TrackOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.fail(); err != nil {
			return TrackOutput{}, err
		}
		f.sweeps = append(f.sweeps, in)
		return TrackOutput{RunID: "sweep-run"}, nil
	})
	env.OnActivity(a.FindTracked, mockAny, mockAny).Return(func(_ context.Context, in FindTrackedInput) (LookupOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.fail(); err != nil {
			return LookupOutput{}, err
		}
		if !f.finished[in.ConfigHash] {
			return LookupOutput{}, nil
		}
		return LookupOutput{Found: true, Key: "mlflow run r1", Outcome: sweep.Outcome{
			Progress:     sweep.Progress{EpochsDone: 3, BestEpoch: 2, BestValAcc: 0.8},
			TrackingInfo: sweep.TrackingInfo{TrackingRun: "r1"},
		}}, nil
	})
}

func (f *fakeTracker) fail() error {
	switch {
	case f.refuse:
		return temporal.NewNonRetryableApplicationError("mlflow: 401 Unauthorized", ErrTypeTracking, nil)
	case f.down != nil && f.down(f.env.Now()):
		return errors.New("mlflow: connection refused")
	}
	return nil
}

func trackedSpec(resolutions ...int) sweep.Spec {
	s := testSpec(resolutions...)
	s.Tracking = sweep.TrackingSettings{URI: "http://mlflow.test", LogModels: true}
	return s
}

// Every epoch is synced after it ends, and the last sync carries the
// final status; the sweep finishes its own run after its trainings.
func TestTrackingSyncsEachEpochAndTheEnd(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	tr := &fakeTracker{}
	tr.register(env)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: trackedSpec(16, 32)})
	p := sweepResult(t, env)
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.TrackingRun != "run-"+o.ID() || o.Tracking != "" {
			t.Errorf("%s: %s, run %q, tracking %q", o.ID(), o.Status, o.TrackingRun, o.Tracking)
		}
	}
	last := map[string]TrackInput{}
	epochs := map[string]map[int]bool{}
	for _, s := range tr.syncs {
		id := s.Outcome.ID()
		last[id] = s
		if epochs[id] == nil {
			epochs[id] = map[int]bool{}
		}
		epochs[id][s.Outcome.EpochsDone] = true
		if s.SweepID == "" || s.Prepared.ConfigHash == "" {
			t.Errorf("sync of %s without its sweep (%q) or config", id, s.SweepID)
		}
	}
	for id, s := range last {
		if s.Outcome.Status != sweep.Completed || s.Outcome.FinishedAt.IsZero() {
			t.Errorf("%s: last sync has status %s, want completed with its end time", id, s.Outcome.Status)
		}
		for e := 0; e <= 3; e++ {
			if !epochs[id][e] {
				t.Errorf("%s: no sync after epoch %d (%v)", id, e, epochs[id])
			}
		}
	}
	if len(tr.sweeps) != 1 || tr.sweeps[0].Status != "completed" || p.Tracking != "" {
		t.Errorf("sweep's run: %d finishes %+v, progress %q", len(tr.sweeps), tr.sweeps, p.Tracking)
	}
}

// A tracking server that is down while the sweep trains costs the training
// nothing: epochs run back to back, the runs fall behind (and say so), and
// when the server returns the sweep brings them up to date before it ends.
func TestTrackingServerDownDoesNotSlowTraining(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	start := env.Now()
	// Up for the first syncs, then down until minute 10 (the test
	// environment retries an activity 10 times at most; the real
	// server's retries have no bound).
	const outage = 10 * time.Minute
	tr := &fakeTracker{down: func(now time.Time) bool { d := now.Sub(start); return d >= 10*time.Second && d < outage }}
	tr.register(env)
	var trainedBy time.Time
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, _ error) {
		if info.ActivityType.Name == ActivityTrainEpoch {
			trainedBy = env.Now()
		}
	})
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: trackedSpec(16, 32)})
	p := sweepResult(t, env)
	// Two combinations in parallel, 3 one-minute epochs each: over well
	// before the server comes back.
	if d := trainedBy.Sub(start); d > 4*time.Minute {
		t.Errorf("training took %v with the tracking server down, want about 3 minutes", d)
	}
	if len(tr.sweeps) != 1 || len(tr.sweeps[0].Outcomes) != 2 {
		t.Fatalf("sweep's tracking: %+v", tr.sweeps)
	}
	for _, o := range tr.sweeps[0].Outcomes {
		if o.Tracking == "" {
			t.Errorf("%s: its run is behind, but the outcome does not say so", o.ID())
		}
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.Tracking != "" {
			t.Errorf("%s: %s, tracking %q after the sweep caught up", o.ID(), o.Status, o.Tracking)
		}
	}
}

// Credentials the server refuses: one clear reason, and the sweep still
// completes every training.
func TestTrackingRefusedStillCompletes(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	tr := &fakeTracker{refuse: true}
	tr.register(env)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: trackedSpec(16)})
	p := sweepResult(t, env)
	o := p.Combos[0]
	if o.Status != sweep.Completed || o.EpochsDone != 3 {
		t.Fatalf("%s: %s after %d epochs", o.ID(), o.Status, o.EpochsDone)
	}
	if want := "401 Unauthorized"; !strings.Contains(o.Tracking, want) || !strings.Contains(p.Tracking, want) {
		t.Errorf("tracking %q / sweep %q, want the reason %q", o.Tracking, p.Tracking, want)
	}
}

// skip_completed: a config the tracking server shows FINISHED is skipped
// like one found in the store, naming the run; others train.
func TestSkipWhatTheTrackingServerHas(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	tr := &fakeTracker{finished: map[string]bool{hashOf(16): true}}
	tr.register(env)
	spec := trackedSpec(16, 32)
	spec.Tracking.SkipCompleted = true
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: spec})
	p := sweepResult(t, env)
	skipped, trained := p.Combos[0], p.Combos[1]
	if skipped.Status != sweep.Skipped || skipped.SkippedFrom != "mlflow run r1" || skipped.BestValAcc != 0.8 {
		t.Errorf("16 px: %s from %q (best %.2f), want skipped from the MLflow run", skipped.Status, skipped.SkippedFrom, skipped.BestValAcc)
	}
	if trained.Status != sweep.Completed {
		t.Errorf("32 px: %s", trained.Status)
	}
	for _, c := range f.calls {
		if c.Config.Resolution == 16 {
			t.Fatal("a training the tracking server has was trained again")
		}
	}
}

// A tracking server no sync ever reaches (a wrong URI, nothing listening)
// does not hold the sweep: it ends within minutes of its trainings and
// says why; one that was reached and then went down is waited for.
func TestTrackingNeverReachedDoesNotHoldTheSweep(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	tr := &fakeTracker{down: func(time.Time) bool { return true }}
	tr.register(env)
	start := env.Now()
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: trackedSpec(16)})
	p := sweepResult(t, env)
	if p.Combos[0].Status != sweep.Completed || !strings.Contains(p.Tracking, "connection refused") {
		t.Fatalf("%s, tracking %q", p.Combos[0].Status, p.Tracking)
	}
	// 3 one-minute epochs, the combination's grace, one sync's time.
	if d := env.Now().Sub(start); d > 3*time.Minute+trackingGrace+trackSyncTime+time.Minute {
		t.Errorf("the sweep ended %v after it started, held by a server it never reached", d)
	}
}

// An add that comes while the sweep finishes (every combination ended, its
// MLflow catch-up still running) is refused with a type a client acts on
// (starter add starts the sweep again with the union), not only in words.
func TestAddToAFinishingSweepIsRefusedAsFinished(t *testing.T) {
	env := newEnv(t)
	newFake().register(env, time.Minute)
	(&fakeTracker{}).register(env)
	// Sent as the sweep's own MLflow sync starts: every combination ended.
	u := &addUpdate{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name != ActivityTrackSweep || u.answered {
			return
		}
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdateAdd, "add", &testsuite.TestUpdateCallback{
				OnAccept: func() {}, OnReject: func(err error) { u.err, u.answered = err, true },
				OnComplete: func(_ any, err error) { u.err, u.answered = err, true },
			}, AddInput{Resolutions: []int{48}})
		}, 0)
	})
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: trackedSpec(16, 32)})
	sweepResult(t, env)
	var app *temporal.ApplicationError
	if !u.answered || !errors.As(u.err, &app) || app.Type() != ErrTypeSweepFinished {
		t.Fatalf("add while finishing: answered %v, %v; want an error of type %s", u.answered, u.err, ErrTypeSweepFinished)
	}
}
