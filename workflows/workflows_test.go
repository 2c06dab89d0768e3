package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/sweep"
)

func testSpec(resolutions ...int) sweep.Spec {
	s := sweep.Defaults()
	s.Name, s.Models, s.Resolutions, s.Epochs, s.MaxParallel = "unit", []string{"smallcnn"}, resolutions, 3, 2
	s.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 64, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: "cosine"}}
	return s
}

// fakeTraining stands in for the activities: it trains nothing but keeps
// per-combination state the way the store would.
type fakeTraining struct {
	mu         sync.Mutex
	epochs     map[int]int // resolution -> epochs done
	calls      []TrainEpochInput
	running    int
	maxActive  int
	done       map[string]bool // config hash -> recorded
	failRes    int             // TrainEpoch at this resolution fails for good
	oomOnce    map[int]bool    // resolution -> OOM on the first call
	resume     map[int]ResumePoint
	plateau    bool              // validation loss never improves after epoch 1
	claims     map[string]string // config hash -> another sweep's combination training it
	evaluated  []EvaluateInput
	unexported map[string]bool // config hash -> recorded without best/final (an earlier version's result)
	recorded   []sweep.Outcome
	// prepareDelay is how long Prepare takes (set before register);
	// prepares counts its calls.
	prepareDelay time.Duration
	prepares     int
}

func newFake() *fakeTraining {
	return &fakeTraining{epochs: map[int]int{}, done: map[string]bool{}, oomOnce: map[int]bool{}, resume: map[int]ResumePoint{}, claims: map[string]string{},
		unexported: map[string]bool{}}
}

func hashOf(res int) string { return fmt.Sprintf("%064d", res) }

func (f *fakeTraining) register(env *testsuite.TestWorkflowEnvironment, trainDelay time.Duration) {
	env.OnActivity(a.Prepare, mockAny, mockAny).After(f.prepareDelay).Return(func(_ context.Context, in PrepareInput) (Prepared, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.prepares++
		f.running++
		f.maxActive = max(f.maxActive, f.running)
		cfg := in.Spec.Config(in.Combination)
		return Prepared{Config: cfg, ConfigHash: hashOf(cfg.Resolution), Family: "cnn", Prefix: "runs/x"}, nil
	})
	env.OnActivity(a.LookupResult, mockAny, mockAny).Return(func(_ context.Context, hash string) (LookupOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.unexported[hash] {
			return LookupOutput{Found: true, Sweep: "earlier", Outcome: sweep.Outcome{Status: sweep.Completed, Progress: sweep.Progress{EpochsDone: 3, BestEpoch: 3, BestValAcc: 0.9}}}, nil
		}
		if f.done[hash] {
			return LookupOutput{Found: true, Sweep: "earlier", Outcome: sweep.Outcome{Status: sweep.Completed, Progress: sweep.Progress{EpochsDone: 3, BestEpoch: 3, BestValAcc: 0.9}, Recorded: sweep.Recorded{Keys: sweep.Keys{Best: "b", Final: "f"}}}}, nil
		}
		return LookupOutput{}, nil
	})
	env.OnActivity(a.FindResumePoint, mockAny, mockAny).Return(func(_ context.Context, p Prepared) (ResumePoint, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		rp := f.resume[p.Config.Resolution]
		f.epochs[p.Config.Resolution] = rp.EpochsDone
		return rp, nil
	})
	env.OnActivity(a.TrainEpoch, mockAny, mockAny).After(trainDelay).Return(func(_ context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		res := in.Config.Resolution
		f.calls = append(f.calls, in)
		if res == f.failRes {
			return TrainEpochOutput{}, temporal.NewNonRetryableApplicationError("data is broken", ErrTypeInvalidInput, nil)
		}
		if f.oomOnce[res] {
			f.oomOnce[res] = false
			return TrainEpochOutput{}, temporal.NewNonRetryableApplicationError("out of memory", ErrTypeOutOfMemory, nil)
		}
		f.epochs[res] = in.Epoch
		m := make([]sweep.EpochMetrics, in.Epoch)
		for i := range m {
			m[i] = sweep.EpochMetrics{Epoch: i + 1, ValLoss: 1 / float64(i+1), ValAcc: 0.5 + 0.1*float64(i)}
		}
		best := in.Epoch
		if f.plateau {
			best = 1
		}
		return TrainEpochOutput{
			Key: fmt.Sprintf("runs/x/cnn/smallcnn/%d/epoch_%04d.json", res, in.Epoch), Attempt: 1,
			BestKey: fmt.Sprintf("runs/x/cnn/smallcnn/%d/epoch_%04d.json", res, best),
			Progress: sweep.Progress{EpochsDone: in.Epoch, Metrics: m, BestEpoch: best,
				BestValLoss: m[best-1].ValLoss, BestValAcc: m[best-1].ValAcc},
		}, nil
	})
	env.OnActivity(a.EvaluateAtResolutions, mockAny, mockAny).Return(func(_ context.Context, in EvaluateInput) (EvaluateOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.evaluated = append(f.evaluated, in)
		out := EvaluateOutput{Evaluated: len(in.Resolutions)}
		for _, r := range in.Resolutions {
			out.Results = append(out.Results, sweep.TestResult{Resolution: r, ValAcc: 0.5, Images: 100})
		}
		return out, nil
	})
	env.OnActivity(a.ClaimTraining, mockAny, mockAny).Return(func(_ context.Context, in ClaimInput) (ClaimOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if h, ok := f.claims[in.ConfigHash]; ok && h != in.Owner {
			return ClaimOutput{Holder: h}, nil
		}
		return ClaimOutput{Granted: true, Holder: in.Owner}, nil
	})
	env.OnActivity(a.RecordResult, mockAny, mockAny).Return(func(_ context.Context, in RecordInput) (RecordOutput, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.running--
		f.recorded = append(f.recorded, in.Outcome)
		if in.Outcome.Status == sweep.Completed {
			delete(f.unexported, in.Outcome.ConfigHash)
			f.done[in.Outcome.ConfigHash] = true
			return RecordOutput{Key: results.ResultKey(in.Outcome.ConfigHash)}, nil
		}
		return RecordOutput{}, nil
	})
}

var mockAny = mock.Anything

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Sweep)
	env.RegisterWorkflow(Combination)
	env.RegisterActivity(a)
	return env
}

func sweepResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) SweepProgress {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p SweepProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSweepRunsAtMostMaxParallelAndIsolatesFailures(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.failRes = 24
	f.register(env, time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16, 24, 32, 48)})
	p := sweepResult(t, env)
	if f.maxActive != 2 {
		t.Errorf("%d combinations ran at once, want max_parallel = 2", f.maxActive)
	}
	want := map[int]sweep.Status{16: sweep.Completed, 24: sweep.Failed, 32: sweep.Completed, 48: sweep.Completed}
	for _, o := range p.Combos {
		if o.Status != want[o.Resolution] {
			t.Errorf("%s: %s (%s), want %s", o.ID(), o.Status, o.Reason, want[o.Resolution])
		}
		if o.Status == sweep.Completed && o.EpochsDone != 3 {
			t.Errorf("%s: %d epochs done", o.ID(), o.EpochsDone)
		}
		if o.Status == sweep.Completed && (len(o.TestResults) == 0 || o.TestError != "") {
			t.Errorf("%s: not evaluated at test resolutions (%q)", o.ID(), o.TestError)
		}
	}
	if len(f.evaluated) != 3 {
		t.Errorf("%d evaluations at test resolutions, want one per completed combination", len(f.evaluated))
	}
	if p.Combos[1].Reason == "" {
		t.Error("failed combination has no reason")
	}
}

func TestSweepSkipsCompletedCombinations(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.done[hashOf(16)] = true
	f.register(env, time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16, 32)})
	p := sweepResult(t, env)
	if p.Combos[0].Status != sweep.Skipped || p.Combos[1].Status != sweep.Completed {
		t.Fatalf("statuses %s, %s; want skipped, completed", p.Combos[0].Status, p.Combos[1].Status)
	}
	for _, c := range f.calls {
		if c.Config.Resolution == 16 {
			t.Fatal("a completed combination was trained again")
		}
	}
}

func TestCombinationResumesFromFoundCheckpoint(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	// A previous (terminated) run left epoch 2 half done.
	f.resume[16] = ResumePoint{Key: "runs/x/cnn/smallcnn/16/mid_e0002_s000040.json", Progress: sweep.Progress{EpochsDone: 1}, Step: 40}
	f.register(env, time.Minute)
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var o sweep.Outcome
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 2 || f.calls[0].Epoch != 2 || f.calls[1].Epoch != 3 {
		t.Fatalf("trained epochs %v, want 2 then 3", epochsOf(f.calls))
	}
	if o.Status != sweep.Completed || len(o.Resumes) != 1 || o.Resumes[0].Step != 40 {
		t.Fatalf("outcome %s with resumes %+v", o.Status, o.Resumes)
	}
}

func epochsOf(calls []TrainEpochInput) []int {
	var e []int
	for _, c := range calls {
		e = append(e, c.Epoch)
	}
	return e
}

// An out-of-memory error halves the micro-batch, keeping the batch, only
// where that keeps the result (VGG without BatchNorm); a model with
// BatchNorm ends with a reason that says what to set, and no epoch trains
// with a smaller micro-batch under its config's name.
func TestOutOfMemoryHalvesMicroBatchOnlyWithoutBatchNorm(t *testing.T) {
	for _, model := range []string{"vgg11", "smallcnn", "resnet18"} {
		env := newEnv(t)
		f := newFake()
		f.oomOnce[32] = true
		f.register(env, time.Minute)
		spec := testSpec(32)
		spec.Models = []string{model}
		env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: model, Resolution: 32}})
		var o sweep.Outcome
		if err := env.GetWorkflowResult(&o); err != nil {
			t.Fatal(err)
		}
		for _, c := range f.calls {
			if c.Config.BatchSize != 64 {
				t.Fatalf("%s: effective batch changed to %d", model, c.Config.BatchSize)
			}
		}
		if !sweep.MicroBatchChangesResult(model) {
			if f.calls[0].MicroBatch != 64 || f.calls[1].MicroBatch != 32 || f.calls[1].Epoch != 1 {
				t.Fatalf("%s: first micro-batch %d, retry micro-batch %d epoch %d; want 64, then 32 for epoch 1", model, f.calls[0].MicroBatch, f.calls[1].MicroBatch, f.calls[1].Epoch)
			}
			if o.Status != sweep.Completed || o.OOMs != 1 || o.MicroBatch != 32 {
				t.Fatalf("%s: outcome %s, OOMs %d, micro-batch %d", model, o.Status, o.OOMs, o.MicroBatch)
			}
			continue
		}
		if len(f.calls) != 1 || o.Status != sweep.Failed || o.OOMs != 1 || o.MicroBatch != 64 || !strings.Contains(o.Reason, "hyper.micro_batch: 32") {
			t.Fatalf("%s: %d epoch calls, outcome %s (%s), OOMs %d, micro-batch %d", model, len(f.calls), o.Status, o.Reason, o.OOMs, o.MicroBatch)
		}
	}
}

func TestPauseResumeCancelOfOneCombination(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, 10*time.Minute)
	var pausedStatus sweep.Status
	var pausedEpochs, callsAtPause, callsBeforeResume int
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPause, nil) }, 15*time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err != nil {
			t.Error(err)
			return
		}
		var o sweep.Outcome
		v.Get(&o)
		pausedStatus, pausedEpochs = o.Status, o.EpochsDone
		f.mu.Lock()
		callsAtPause = len(f.calls)
		f.mu.Unlock()
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		callsBeforeResume = len(f.calls)
		f.mu.Unlock()
	}, 170*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResume, nil) }, 3*time.Hour)
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var o sweep.Outcome
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if pausedStatus != sweep.Paused || pausedEpochs != 1 {
		t.Errorf("while paused: status %s, %d epochs; want paused after 1 epoch", pausedStatus, pausedEpochs)
	}
	if callsAtPause != 2 || callsBeforeResume != callsAtPause {
		t.Errorf("TrainEpoch calls: %d at the pause (epoch 1, interrupted epoch 2), %d just before resume; want 2 and no new ones", callsAtPause, callsBeforeResume)
	}
	if len(f.calls) != 4 || f.calls[2].Epoch != 2 {
		t.Errorf("epochs called %v, want [1 2 2 3]: the interrupted epoch runs again after resume", epochsOf(f.calls))
	}
	if o.Status != sweep.Completed || o.EpochsDone != 3 {
		t.Errorf("after resume: %s with %d epochs", o.Status, o.EpochsDone)
	}

	env = newEnv(t)
	f = newFake()
	f.register(env, 10*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, nil) }, 15*time.Minute)
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if o.Status != sweep.Cancelled || o.EpochsDone != 1 {
		t.Errorf("after cancel: %s with %d epochs, want cancelled after 1", o.Status, o.EpochsDone)
	}
}

func TestPauseResumeCancelOfTheSweep(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, 10*time.Minute)
	var paused SweepProgress
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPause, nil) }, 15*time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err == nil {
			v.Get(&paused)
		}
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResume, nil) }, 3*time.Hour)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16, 24, 32)})
	p := sweepResult(t, env)
	if !paused.Paused || paused.Combos[0].Status != sweep.Paused || paused.Combos[2].Status != sweep.Pending {
		t.Errorf("during pause: paused=%v, statuses %s %s %s", paused.Paused, paused.Combos[0].Status, paused.Combos[1].Status, paused.Combos[2].Status)
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed {
			t.Errorf("%s: %s after resume", o.ID(), o.Status)
		}
	}

	env = newEnv(t)
	f = newFake()
	f.register(env, 10*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, nil) }, 15*time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16, 24, 32)})
	p = sweepResult(t, env)
	for _, o := range p.Combos {
		if o.Status != sweep.Cancelled {
			t.Errorf("%s: %s after cancelling the sweep", o.ID(), o.Status)
		}
	}
	if !p.Cancelled {
		t.Error("sweep not marked cancelled")
	}
}

func TestUpdatesRefuseInvalidControl(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, 10*time.Minute)
	var firstErr, secondErr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateResume, "u1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { firstErr = err }, OnAccept: func() {}, OnComplete: func(any, error) {}})
		env.UpdateWorkflow(UpdatePause, "u2", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { secondErr = err }, OnAccept: func() {}, OnComplete: func(any, error) {}})
	}, 5*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResume, nil) }, time.Hour)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16)})
	sweepResult(t, env)
	if firstErr == nil {
		t.Error("resuming a sweep that is not paused was accepted")
	}
	if secondErr != nil {
		t.Errorf("pausing a running sweep was refused: %v", secondErr)
	}
}

func TestSweepContinuesAsNewKeepingState(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	spec := testSpec(16, 24, 32)
	spec.MaxParallel = 1
	spec.ContinueAsNewAfter = 1 // as soon as the first child is done
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: spec})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var in SweepInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	if in.Carry == nil || in.Carry.Next != 1 || len(in.Carry.Running) != 0 || in.Carry.Ledger == nil || len(in.Carry.Ledger.Ended) != 1 ||
		in.Carry.Ledger.Ended[0].Index != 0 || in.Carry.Ledger.Ended[0].Outcome.Status != sweep.Completed || in.Carry.Runs != 1 {
		t.Fatalf("carried state %+v", in.Carry)
	}

	// The next run picks up where the first left off.
	env2 := newEnv(t)
	f.register(env2, time.Minute)
	in.Spec.ContinueAsNewAfter = 100000
	env2.ExecuteWorkflow(Sweep, in)
	p := sweepResult(t, env2)
	if p.Runs != 1 || p.Combos[0].Status != sweep.Completed || p.Combos[2].Status != sweep.Completed {
		t.Fatalf("after continue-as-new: %+v", p)
	}
	if n := len(f.calls); n != 9 {
		t.Fatalf("%d epochs trained over both runs, want 9 (nothing twice)", n)
	}
}

func TestInvalidSpecIsRefused(t *testing.T) {
	env := newEnv(t)
	spec := testSpec()
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: spec})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "resolutions") {
		t.Fatalf("error %v, want one naming resolutions", err)
	}
}

func TestEarlyStoppingAfterPatienceEpochsWithoutImprovement(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.plateau = true
	f.register(env, time.Minute)
	spec := testSpec(16)
	spec.Epochs, spec.Patience = 10, 2
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var o sweep.Outcome
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if !o.EarlyStopped || o.Status != sweep.Completed || o.EpochsDone != 3 || len(f.calls) != 3 || o.BestEpoch != 1 {
		t.Fatalf("early stop: stopped=%v status=%s after %d epochs (%d calls), best epoch %d; want stop after epoch 3", o.EarlyStopped, o.Status, o.EpochsDone, len(f.calls), o.BestEpoch)
	}
	if o.Keys.Final != "runs/x/cnn/smallcnn/16/epoch_0003.json" {
		t.Fatalf("final key %q", o.Keys.Final)
	}
}

// activityStubs has the names and signatures of activities.Activities
// (which imports this package): the tests mock each method.
type activityStubs struct{}

var _ ActivityAPI = (*activityStubs)(nil)

func (*activityStubs) Prepare(context.Context, PrepareInput) (Prepared, error) { panic("mocked") }
func (*activityStubs) LookupResult(context.Context, string) (LookupOutput, error) {
	panic("mocked")
}
func (*activityStubs) FindResumePoint(context.Context, Prepared) (ResumePoint, error) {
	panic("mocked")
}
func (*activityStubs) TrainEpoch(context.Context, TrainEpochInput) (TrainEpochOutput, error) {
	panic("mocked")
}
func (*activityStubs) RecordResult(context.Context, RecordInput) (RecordOutput, error) {
	panic("mocked")
}
func (*activityStubs) ClaimTraining(context.Context, ClaimInput) (ClaimOutput, error) {
	panic("mocked")
}
func (*activityStubs) EvaluateAtResolutions(context.Context, EvaluateInput) (EvaluateOutput, error) {
	panic("mocked")
}
func (*activityStubs) DescribeChildren(context.Context, ChildrenInput) (ChildrenOutput, error) {
	panic("mocked")
}
func (*activityStubs) TrackTraining(context.Context, TrackInput) (TrackOutput, error) {
	panic("mocked")
}
func (*activityStubs) TrackSweep(context.Context, TrackSweepInput) (TrackOutput, error) {
	panic("mocked")
}
func (*activityStubs) FindTracked(context.Context, FindTrackedInput) (LookupOutput, error) {
	panic("mocked")
}

var a *activityStubs

// A pause and a resume in quick succession (both handled before the
// stopped epoch reports back) must not fail the combination: the stopped
// epoch runs again and the combination completes.
func TestQuickPauseResumeCompletes(t *testing.T) {
	for _, sweepWide := range []bool{false, true} {
		env := newEnv(t)
		f := newFake()
		f.register(env, 10*time.Minute)
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(SignalPause, nil)
			env.SignalWorkflow(SignalResume, nil)
		}, 15*time.Minute)
		var o sweep.Outcome
		if sweepWide {
			env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16)})
			var p SweepProgress
			if err := env.GetWorkflowResult(&p); err != nil {
				t.Fatal(err)
			}
			o = p.Combos[0]
		} else {
			env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
			if err := env.GetWorkflowResult(&o); err != nil {
				t.Fatal(err)
			}
		}
		if o.Status != sweep.Completed || o.EpochsDone != 3 {
			t.Errorf("sweep-wide %v: %s (%s) with %d epochs, want completed with 3", sweepWide, o.Status, o.Reason, o.EpochsDone)
		}
	}
}

// A cancelled sweep workflow (temporal workflow cancel) ends only after its
// children have: each checkpointed and recorded its outcome, so starting
// the sweep again at once finds no child still running under its ID.
func TestCancelledSweepWaitsForItsChildren(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, 10*time.Minute)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 15*time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16, 24, 32)})
	if !env.IsWorkflowCompleted() {
		t.Fatal("sweep did not end")
	}
	var p SweepProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Logf("sweep ended with %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running != 0 {
		t.Errorf("%d combinations had not recorded their outcome when the sweep ended", f.running)
	}
	for _, o := range p.Combos[:2] {
		if o.Status != sweep.Cancelled || o.Reason != "workflow cancelled" || o.EpochsDone != 1 {
			t.Errorf("%s: %s (%s) after %d epochs, want cancelled by the child itself after 1", o.ID(), o.Status, o.Reason, o.EpochsDone)
		}
	}
}

// While another sweep's combination trains the same config, a combination
// waits without training, then adopts that result once it is recorded.
func TestCombinationWaitsForAnotherSweepTrainingItsConfig(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, 10*time.Minute)
	f.claims[hashOf(16)] = "sweep-other/smallcnn@16"
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.calls) != 0 {
			t.Errorf("trained %d epochs while another sweep held the config", len(f.calls))
		}
		f.done[hashOf(16)] = true // the other sweep recorded its result
		delete(f.claims, hashOf(16))
	}, 20*time.Minute)
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var o sweep.Outcome
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if o.Status != sweep.Skipped || o.SkippedFrom != "earlier" || len(f.calls) != 0 {
		t.Fatalf("%s (%s), %d epochs trained: want the other sweep's result adopted", o.Status, o.Reason, len(f.calls))
	}
}

// Heal, never freeze: a training whose epochs are all stored but whose
// result is not (the store down for RecordResult, the workflow ended while
// evaluating), and one whose result was recorded without its best and
// final models, are evaluated at the test resolutions and recorded with
// both, training no epoch again.
func TestTrainedButUnrecordedIsHealed(t *testing.T) {
	for _, unexported := range []bool{false, true} {
		env := newEnv(t)
		f := newFake()
		f.resume[16] = ResumePoint{Key: "runs/x/cnn/smallcnn/16/epoch_0003.json", BestKey: "runs/x/cnn/smallcnn/16/epoch_0002.json",
			Progress: sweep.Progress{EpochsDone: 3, BestEpoch: 2, BestValAcc: 0.7}}
		f.unexported[hashOf(16)] = unexported
		f.register(env, time.Minute)
		env.ExecuteWorkflow(Combination, CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
		var o sweep.Outcome
		if err := env.GetWorkflowResult(&o); err != nil {
			t.Fatal(err)
		}
		if len(f.calls) != 0 || o.Status != sweep.Completed || o.Keys.Best != f.resume[16].BestKey || o.Keys.Final != f.resume[16].Key {
			t.Fatalf("unexported result %v: %d epochs trained, outcome %s, keys %+v", unexported, len(f.calls), o.Status, o.Keys)
		}
		if len(f.evaluated) != 1 || f.evaluated[0].BestKey != f.resume[16].BestKey || len(o.TestResults) == 0 {
			t.Fatalf("unexported result %v: evaluations %+v, test results %+v", unexported, f.evaluated, o.TestResults)
		}
	}
}

// Patience is checked at resume: a training found with its patience spent
// (it stopped early, then was not recorded) trains no further epoch.
func TestPatienceIsCheckedAtResume(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.resume[16] = ResumePoint{Key: "runs/x/cnn/smallcnn/16/epoch_0003.json", BestKey: "runs/x/cnn/smallcnn/16/epoch_0001.json",
		Progress: sweep.Progress{EpochsDone: 3, BestEpoch: 1, BestValAcc: 0.7}}
	f.register(env, time.Minute)
	spec := testSpec(16)
	spec.Epochs, spec.Patience = 6, 2
	env.ExecuteWorkflow(Combination, CombinationInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	var o sweep.Outcome
	if err := env.GetWorkflowResult(&o); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 || !o.EarlyStopped || o.Status != sweep.Completed || o.Keys.Final != f.resume[16].Key || o.EpochsDone != 3 {
		t.Fatalf("epochs trained %v, outcome %s early-stopped %v, %d epochs, keys %+v", epochsOf(f.calls), o.Status, o.EarlyStopped, o.EpochsDone, o.Keys)
	}
}
