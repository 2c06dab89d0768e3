package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// world is the store and the server as the lifecycle tests see them:
// trainings keyed by (model, resolution, seed), the epochs each has done,
// what was recorded, and which children have closed.
type world struct {
	mu       sync.Mutex
	done     map[string]int            // training -> epochs done
	found    map[string]int            // training -> epochs of a checkpoint found at start
	starts   []epochStart              // every TrainEpoch attempt
	recorded map[string][]sweep.Status // training -> statuses recorded
	closed   map[string]ClosedChild    // child workflow ID -> how it closed
	// fail decides an attempt's fate (nil: it trains); called with mu held.
	fail func(ctx context.Context, in TrainEpochInput) error
	// onStart hears of every attempt's start (test clock); mu held.
	onStart func(training string, at time.Time)
	// retireWithRun: once the run a test server runs has continued as
	// new, what its children still do there no longer counts (the SDK's
	// test server may run them on; the next run's test stands in for them).
	retireWithRun bool
}

type epochStart struct {
	training string
	epoch    int
	at       time.Time
	queue    string
}

func newWorld() *world {
	return &world{done: map[string]int{}, found: map[string]int{}, recorded: map[string][]sweep.Status{}, closed: map[string]ClosedChild{}}
}

func trainingOf(cfg sweep.Config) string {
	return fmt.Sprintf("%s@%d/%d", cfg.Model, cfg.Resolution, cfg.Seed)
}

// metricsFor are figures that differ per training and epoch.
func metricsFor(cfg sweep.Config, epoch int) sweep.EpochMetrics {
	return sweep.EpochMetrics{Epoch: epoch, ValLoss: 1 / float64(epoch), ValAcc: float64(cfg.Seed)/10 + float64(epoch)/100, ImagesPS: 1000}
}

func progressOf(cfg sweep.Config, epochs int) sweep.Progress {
	p := sweep.Progress{EpochsDone: epochs}
	for e := 1; e <= epochs; e++ {
		p.Metrics = append(p.Metrics, metricsFor(cfg, e))
	}
	if epochs > 0 {
		p.BestEpoch, p.BestValLoss, p.BestValAcc = epochs, p.Metrics[epochs-1].ValLoss, p.Metrics[epochs-1].ValAcc
	}
	return p
}

// register mocks the activities on env; every epoch takes epochTime.
func (w *world) register(env *testsuite.TestWorkflowEnvironment, epochTime time.Duration) {
	retired := func() bool { return w.retireWithRun && env.IsWorkflowCompleted() }
	env.RegisterWorkflow(Sweep)
	env.RegisterWorkflow(Combination)
	env.RegisterActivity(a)
	hash := func(cfg sweep.Config, _ sweep.Combination) string {
		return fmt.Sprintf("%064x", len(trainingOf(cfg))) + trainingOf(cfg)
	}
	mockTrainingSetup(env, hash, func(p Prepared) ResumePoint {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := max(w.done[trainingOf(p.Config)], w.found[trainingOf(p.Config)])
		w.done[trainingOf(p.Config)] = n
		if n == 0 {
			return ResumePoint{}
		}
		return ResumePoint{Key: fmt.Sprintf("runs/x/%s/epoch_%04d.json", trainingOf(p.Config), n), Progress: progressOf(p.Config, n)}
	})
	env.OnActivity(a.TrainEpoch, mockAny, mockAny).After(epochTime).Return(func(ctx context.Context, in TrainEpochInput) (TrainEpochOutput, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if retired() {
			return TrainEpochOutput{}, errors.New("this test server's run has continued as new")
		}
		id := trainingOf(in.Config)
		// The mock answers after epochTime of the test's clock.
		w.starts = append(w.starts, epochStart{id, in.Epoch, env.Now().Add(-epochTime), activity.GetInfo(ctx).TaskQueue})
		if w.onStart != nil {
			w.onStart(id, env.Now().Add(-epochTime))
		}
		if w.fail != nil {
			if err := w.fail(ctx, in); err != nil {
				return TrainEpochOutput{}, err
			}
		}
		w.done[id] = in.Epoch
		p := progressOf(in.Config, in.Epoch)
		p.Metrics = p.Metrics[in.Epoch-1:]
		key := fmt.Sprintf("runs/x/%s/epoch_%04d.json", id, in.Epoch)
		return TrainEpochOutput{Key: key, BestKey: key, Attempt: 1, Progress: p, WorkerQueue: "resomap@worker-a"}, nil
	})
	env.OnActivity(a.EvaluateAtResolutions, mockAny, mockAny).Return(EvaluateOutput{}, nil)
	env.OnActivity(a.RecordResult, mockAny, mockAny).Return(func(_ context.Context, in RecordInput) (RecordOutput, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		id := fmt.Sprintf("%s@%d/%d", in.Outcome.Model, in.Outcome.Resolution, in.Outcome.Seed)
		if !retired() {
			w.recorded[id] = append(w.recorded[id], in.Outcome.Status)
		}
		return RecordOutput{}, nil
	})
	env.OnActivity(a.DescribeChildren, mockAny, mockAny).Return(func(_ context.Context, in ChildrenInput) (ChildrenOutput, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out ChildrenOutput
		for _, id := range in.IDs {
			if c, ok := w.closed[id]; ok {
				out.Closed = append(out.Closed, c)
			}
		}
		return out, nil
	})
}

func newLifecycleEnv(w *world, epochTime time.Duration) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	// Failing attempts are what these tests make; the SDK would log each.
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	w.register(env, epochTime)
	return env
}

// continuedAs is the input of the run a workflow continued as.
func continuedAs(t *testing.T, env *testsuite.TestWorkflowEnvironment) SweepInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("sweep ended with %v, want continue-as-new", err)
	}
	var in SweepInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func seedSpec() sweep.Spec {
	s := testSpec(16)
	s.Seeds, s.MaxParallel, s.ContinueAsNewAfter = []uint64{1, 2}, 2, 1
	return s
}

// Two seeds of one (model, resolution) run at once: each row shows its
// own seed's figures while they run, and after a continue-as-new the seed
// still training (a child of the earlier run) ends the sweep by its signal.
func TestSeedsKeepTheirOwnRowsAcrossContinueAsNew(t *testing.T) {
	w := newWorld()
	w.found["smallcnn@16/2"] = 1 // seed 2 finishes first
	env := newLifecycleEnv(w, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err != nil {
			t.Fatal(err)
		}
		var p SweepProgress
		if err := v.Get(&p); err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Combos {
			if want := int(o.Seed); o.EpochsDone != want || o.BestValAcc != float64(o.Seed)/10+float64(want)/100 {
				t.Errorf("row of seed %d while running: %d epochs, best %.2f; want its own figures", o.Seed, o.EpochsDone, o.BestValAcc)
			}
		}
	}, 15*time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: seedSpec()})
	in := continuedAs(t, env)
	if len(in.Carry.Running) != 1 || len(in.Carry.Live) != 1 || in.Carry.Live[0].Seed != 1 || in.Carry.Live[0].Status.Done() {
		t.Fatalf("carried %+v: want seed 1 still running", in.Carry)
	}

	// The next run: seed 1, a child of the earlier run, reports its end.
	env2 := newLifecycleEnv(w, 10*time.Minute)
	cfg := in.Spec.Config(sweep.Combination{Model: "smallcnn", Resolution: 16, Seed: 1})
	env2.RegisterDelayedCallback(func() {
		env2.SignalWorkflow(SignalProgress, sweep.Outcome{
			Identity: sweep.Identity{Model: "smallcnn", Resolution: 16, Seed: 1},
			Epochs:   3, Status: sweep.Completed, Progress: progressOf(cfg, 3),
		})
	}, 10*time.Minute)
	env2.ExecuteWorkflow(Sweep, in)
	p := sweepResult(t, env2)
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.EpochsDone != 3 || o.BestValAcc != float64(o.Seed)/10+0.03 {
			t.Errorf("seed %d: %s with %d epochs, best %.2f; want completed with its own figures", o.Seed, o.Status, o.EpochsDone, o.BestValAcc)
		}
	}
}

// A child of an earlier run that closes without a last signal (terminated
// from the Web UI) is found by asking the server: the sweep records how it
// ended and ends; so does a sweep-wide cancel that meets such a child.
func TestSilentChildrenOfEarlierRunsAreFound(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		w := newWorld()
		spec := testSpec(16, 24)
		in := SweepInput{Spec: spec, Carry: &SweepCarry{Next: 2, Runs: 1, Running: []int{0, 1}, Outcomes: []sweep.Outcome{
			{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16}, Epochs: 3, Status: sweep.Running},
			{Identity: sweep.Identity{Model: "smallcnn", Resolution: 24}, Epochs: 3, Status: sweep.Running},
		}}}
		env := newLifecycleEnv(w, 10*time.Minute)
		id := ChildID(SweepID("unit"), "smallcnn@16")
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: SweepID("unit")})
		w.closed[id] = ClosedChild{ID: id, Status: sweep.Terminated, Reason: "terminated by the Web UI"}
		env.RegisterDelayedCallback(func() {
			if cancel {
				env.CancelWorkflow()
				return
			}
			env.SignalWorkflow(SignalProgress, sweep.Outcome{
				Identity: sweep.Identity{Model: "smallcnn", Resolution: 24},
				Epochs:   3, Status: sweep.Completed, Progress: sweep.Progress{EpochsDone: 3},
			})
		}, 5*time.Minute)
		if cancel { // the running one ends cancelled, by its last signal
			w.closed[ChildID(SweepID("unit"), "smallcnn@24")] = ClosedChild{ID: ChildID(SweepID("unit"), "smallcnn@24"), Status: sweep.Cancelled}
		}
		env.ExecuteWorkflow(Sweep, in)
		if !env.IsWorkflowCompleted() {
			t.Fatalf("cancel %v: the sweep did not end", cancel)
		}
		var p SweepProgress
		if err := env.GetWorkflowResult(&p); err != nil {
			t.Fatalf("cancel %v: %v", cancel, err)
		}
		if p.Combos[0].Status != sweep.Terminated {
			t.Errorf("cancel %v: terminated child shown as %s (%s)", cancel, p.Combos[0].Status, p.Combos[0].Reason)
		}
		if got := w.recorded["smallcnn@16/0"]; len(got) != 1 || got[0] != sweep.Terminated {
			t.Errorf("cancel %v: recorded for the terminated child: %v, want terminated once", cancel, got)
		}
	}
}

// A pause or cancel that meets an epoch whose worker died (the server does
// not retry an attempt once its cancel was asked for, so it ends in a
// heartbeat timeout, not a cancel) still pauses or cancels: the
// combination is not failed, and an epoch that was sent to its worker's
// own queue is not sent on to another worker. (The SDK's test environment
// always answers a cancel itself, so the timeout is the attempt's fate
// here, with the command already received.)
func TestPauseOrCancelMeetsADeadWorker(t *testing.T) {
	for _, tc := range []struct {
		cmd   string
		queue string // the worker's own queue the epoch goes to first ("": the shared queue)
	}{{SignalPause, ""}, {SignalPause, "resomap@worker-a"}, {SignalCancel, ""}, {SignalCancel, "resomap@worker-a"}} {
		w := newWorld()
		w.fail = func(context.Context, TrainEpochInput) error {
			return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
		}
		env := newLifecycleEnv(w, time.Minute)
		env.RegisterWorkflow(epochAfterCommand)
		env.ExecuteWorkflow(epochAfterCommand, tc.cmd, tc.queue)
		var end string
		if err := env.GetWorkflowResult(&end); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{SignalPause: "goes on (paused)", SignalCancel: string(sweep.Cancelled)}[tc.cmd]
		if end != want {
			t.Errorf("%s, queue %q: the combination %s, want it %s", tc.cmd, tc.queue, end, want)
		}
		// (Attempts on the shared queue are the test server's retries: a
		// real one makes none once the cancel was asked for.)
		for _, s := range w.starts {
			if tc.queue != "" && s.queue != tc.queue {
				t.Errorf("%s: the epoch went on to queue %s after its worker died", tc.cmd, s.queue)
			}
		}
	}
}

// epochAfterCommand runs one epoch of a combination that received cmd
// while the epoch ran, and says how the combination goes on.
func epochAfterCommand(ctx workflow.Context, cmd, queue string) (string, error) {
	c := newCombination(CombinationInput{Spec: testSpec(16), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	c.ctl.paused, c.ctl.cancelled = cmd == SignalPause, cmd == SignalCancel
	c.workerQueue = queue
	_, err := c.trainEpoch(ctx, 2)
	if err == nil {
		return "trained", nil
	}
	if end := c.epochFailed(ctx, 2, err); end != nil {
		return string(end.status), nil
	}
	return "goes on (paused)", nil
}
