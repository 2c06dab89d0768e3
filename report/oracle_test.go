package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// A model-based test of the measurement: random sequences of what users
// do — start a sweep, grow it while it runs and after it finished (models,
// resolutions, seeds), pause and resume, cancel, start it again, while
// epochs' workers die, the store refuses RecordResult for a while and
// the sweep continues as new at any point (the children still running
// then are terminated with the run that started them, as a user can) —
// run through the real Sweep and Combination workflows (the SDK's test
// server) against a world whose trainings are pure functions of their
// config and whose results index is the real one. After every schedule, a
// clean start of the union of what was asked must give the report of one
// clean sweep of that union (the oracle): each training once, with its
// accuracy, compute hours, time split and test-resolution rows, the seeds
// per cell, and the Pareto front of the union.
//
// RESOMAP_ORACLE_RUNS sets the number of schedules (make chaos runs more);
// RESOMAP_ORACLE_SEED replays one.
func TestReportMatchesACleanSweepWhateverUsersDid(t *testing.T) {
	runs, seed := 300, uint64(time.Now().UnixNano())
	if testing.Short() {
		runs = 50
	}
	if v, err := strconv.Atoi(os.Getenv("RESOMAP_ORACLE_RUNS")); err == nil {
		runs = v
	}
	if v, err := strconv.ParseUint(os.Getenv("RESOMAP_ORACLE_SEED"), 10, 64); err == nil {
		seed, runs = v, 1
	}
	started := time.Now()
	var met oracleStats
	for i := range runs {
		s := seed + uint64(i)
		if problems := oracleSchedule(s, &met); len(problems) > 0 {
			t.Fatalf("schedule %d (replay: RESOMAP_ORACLE_SEED=%d go test -run TestReportMatchesACleanSweepWhateverUsersDid ./report):\n%s",
				s, s, strings.Join(problems, "\n"))
		}
	}
	t.Logf("%d schedules from seed %d in %v (%d goroutines left); schedules that met: %+v", runs, seed, time.Since(started), runtime.NumGoroutine(), met)
}

// oracleStats counts the schedules that met each situation, so that a
// run shows what it exercised.
type oracleStats struct {
	GrownWhileRunning, GrownWhenFinished, Cancelled, RecordRefused, NotRecorded, ResumedAcrossRuns, Legacy int
	// ChildrenTerminated: schedules where a run continued as new while
	// children ran, and they ended with it without recording an outcome;
	// ChildrenOutlived: where such children ran on and their last progress
	// signal went to the next run.
	ChildrenTerminated, ChildrenOutlived int
}

// oracleSchedule plays one schedule and returns what the final report got
// wrong.
func oracleSchedule(seed uint64, met *oracleStats) (problems []string) {
	defer func() {
		if r := recover(); r != nil { // the SDK's test server panics on a run that can never end
			problems = append(problems, fmt.Sprintf("a sweep hung: %v", r))
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 29))
	w := newPureWorld(seed)
	union := randomSpec(rng)
	var log []string
	if rng.IntN(4) == 0 {
		w.plantLegacyResult(union, &log)
	}
	sessions := 1 + rng.IntN(3)
	for s := range sessions {
		var err error
		union, err = w.session(rng, union, true, &log)
		if err != nil {
			return append(log, fmt.Sprintf("session %d: %v", s+1, err))
		}
		if s+1 < sessions && rng.IntN(2) == 0 { // starter add on the finished sweep: the union, started again
			if grown, _, err := workflows.Grown(union, randomAdd(rng)); err == nil {
				log = append(log, fmt.Sprintf("add to the finished sweep: %v %v %v", grown.Models, grown.Resolutions, grown.Seeds))
				union = grown
			}
		}
	}
	if _, err := w.session(rng, union, false, &log); err != nil {
		return append(log, fmt.Sprintf("the clean start of the union: %v", err))
	}
	if bad := w.check(union); len(bad) > 0 {
		return append(log, bad...)
	}
	w.tally(log, met)
	return nil
}

// tally counts what this schedule met.
func (w *pureWorld) tally(log []string, met *oracleStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	count := func(n *int, cond bool) {
		if cond {
			(*n)++
		}
	}
	has := func(prefix string) bool {
		return slices.ContainsFunc(log, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	count(&met.GrownWhileRunning, has("add {"))
	count(&met.GrownWhenFinished, has("add to the finished sweep"))
	count(&met.Cancelled, w.ended[sweep.Cancelled] > 0)
	count(&met.RecordRefused, w.refused > 0)
	count(&met.NotRecorded, w.ended[sweep.Failed] > 0)
	count(&met.ResumedAcrossRuns, w.resumed > 0)
	count(&met.Legacy, w.legacy)
	count(&met.ChildrenTerminated, w.terminated > 0)
	count(&met.ChildrenOutlived, w.lateSignals > 0)
}

// plantLegacyResult stores what an earlier version recorded of the spec's
// first training: completed, its epochs checkpointed, but without its
// best and final models nor test resolutions (healed when met).
func (w *pureWorld) plantLegacyResult(spec sweep.Spec, log *[]string) {
	c := spec.Combinations()[0]
	cfg := spec.Config(c)
	cfg.DataHash, cfg.Augment = "pure-data", "cifar"
	h := cfg.Hash()
	o := sweep.Outcome{
		Identity: sweep.Identity{Model: c.Model, Family: sweep.FamilyOf(c.Model), Resolution: c.Resolution, Seed: c.Seed, ConfigHash: h},
		Status:   sweep.Completed, Epochs: spec.Epochs, Progress: pureProgress(cfg, h, spec.Epochs),
	}
	if _, err := w.idx.Record(context.Background(), "earlier", o); err != nil {
		panic(err)
	}
	w.stored[h], w.legacy = spec.Epochs, true
	*log = append(*log, fmt.Sprintf("an earlier version recorded %s without its models", c.ID()))
}

// randomSpec is a small sweep: one or two models, one to three
// resolutions, maybe seeds, two or three epochs.
func randomSpec(rng *rand.Rand) sweep.Spec {
	s := sweep.Defaults()
	s.Name = "oracle"
	s.Models = []string{"smallcnn", "resnet18"}[:1+rng.IntN(2)]
	s.Resolutions = []int{32, 40, 48}[:1+rng.IntN(3)]
	if rng.IntN(2) == 0 {
		s.Seeds = []uint64{1, 2}[:1+rng.IntN(2)]
	}
	s.Seed = 1
	s.Epochs = 2 + rng.IntN(2)
	s.Data, s.AllowUpsampling = "fashion-mnist", true
	if rng.IntN(2) == 0 {
		s.TestResolutions = []int{32, 48}
	} // else the sweep's resolutions and 1.25x the largest: they grow with it
	s.MaxParallel = 1 + rng.IntN(3)
	if rng.IntN(2) == 0 {
		// A run continues as new at any point, children running or not
		// (pureWorld.session says how they end).
		s.ContinueAsNewAfter = 1 + rng.IntN(2)
	}
	return s
}

// randomAdd is what a user adds: a resolution, a model, seeds.
func randomAdd(rng *rand.Rand) workflows.AddInput {
	switch rng.IntN(3) {
	case 0:
		return workflows.AddInput{Resolutions: []int{[]int{32, 40, 48, 56}[rng.IntN(4)]}}
	case 1:
		return workflows.AddInput{Models: []string{[]string{"smallcnn", "resnet18"}[rng.IntN(2)]}}
	}
	return workflows.AddInput{Seeds: []uint64{1 + uint64(rng.IntN(3)), 2 + uint64(rng.IntN(3))}}
}

// pureWorld is the store and the workers: trainings are pure functions of
// their config; checkpoints are the epochs each config has stored; the
// results index is the real one, on an in-memory store.
type pureWorld struct {
	seed       uint64
	mu         sync.Mutex
	st         *memStore
	idx        results.Index
	stored     map[string]int // config hash -> epochs checkpointed
	attempts   map[string]int // config hash/epoch -> attempts
	recordDown bool           // RecordResult's store is unavailable
	faulty     bool           // epochs' workers die now and then
	// What happened, for the tally: outcomes recorded by status, records
	// refused, trainings resumed from an earlier run's checkpoints, a
	// legacy result (without best/final) planted at the start.
	ended   map[sweep.Status]int
	refused int
	resumed int
	legacy  bool
	// closed is how each combination workflow (by ID) of this session
	// ended, as the server describes it; late are the outcomes of children
	// that ended after the run that started them, whose last progress
	// signal goes to the next run; terminated counts the children that
	// ended with their run, terminated by the user.
	closed      map[string]workflows.ClosedChild
	late        []sweep.Outcome
	lateSignals int
	terminated  int
	// pausedByUser: the user paused the sweep and has not yet resumed it.
	pausedByUser bool
}

func newPureWorld(seed uint64) *pureWorld {
	st := &memStore{objects: map[string][]byte{}}
	return &pureWorld{seed: seed, st: st, idx: results.Index{Store: st}, stored: map[string]int{}, attempts: map[string]int{},
		ended: map[sweep.Status]int{}, closed: map[string]workflows.ClosedChild{}}
}

// session runs the sweep spec (one run and those it continues as) until
// it ends; with faults, users act on it meanwhile and the world fails now
// and then. It returns the union of what was asked by then.
func (w *pureWorld) session(rng *rand.Rand, spec sweep.Spec, faults bool, log *[]string) (sweep.Spec, error) {
	*log = append(*log, fmt.Sprintf("start %v %v seeds %v, %d epochs, max_parallel %d, continue-as-new after %d, faults %v",
		spec.Models, spec.Resolutions, spec.Seeds, spec.Epochs, spec.MaxParallel, spec.ContinueAsNewAfter, faults))
	w.mu.Lock()
	w.faulty, w.recordDown, w.pausedByUser = faults, false, false
	clear(w.closed) // a new sweep starts its children anew
	w.late = nil
	w.mu.Unlock()
	in := workflows.SweepInput{Spec: spec}
	union := spec
	for generation := 0; ; generation++ {
		if generation > 60 {
			return union, errors.New("more than 60 continue-as-new generations")
		}
		// Children still running when this run continues as new run to
		// their end, as on a server (always in the clean start), or, with
		// faults now and then, the user terminates them with their run.
		outlive := !faults || rng.IntN(2) == 0
		env := w.newEnv(outlive)
		w.signalLate(rng, env)
		if faults {
			w.schedule(rng, env, &union, !outlive, log)
		}
		env.ExecuteWorkflow(workflows.Sweep, in)
		if !env.IsWorkflowCompleted() {
			return union, errors.New("the sweep did not end")
		}
		var can *workflow.ContinueAsNewError
		err := env.GetWorkflowError()
		if errors.As(err, &can) {
			in = workflows.SweepInput{}
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				return union, err
			}
			// What was asked goes on: the next run's spec has every
			// training the union has (an accepted add is never lost).
			for _, c := range union.Combinations() {
				if !slices.Contains(in.Spec.Combinations(), c) {
					return union, fmt.Errorf("the run continued as new without %s, which was asked for", c.ID())
				}
			}
			union = in.Spec
			continue
		}
		return union, err
	}
}

// schedule registers a session's user actions and outages at random
// times of the test clock.
// A pause only when the run's children are not waited for at its end:
// those paused then would wait for a resume that goes to the next run.
func (w *pureWorld) schedule(rng *rand.Rand, env *testsuite.TestWorkflowEnvironment, union *sweep.Spec, pauses bool, log *[]string) {
	horizon := time.Duration(union.Epochs*len(union.Combinations())+2) * 10 * time.Minute
	at := func() time.Duration { return time.Duration(rng.Int64N(int64(horizon))) }
	for range rng.IntN(3) {
		add := randomAdd(rng)
		env.RegisterDelayedCallback(func() {
			if env.IsWorkflowCompleted() {
				return
			}
			env.UpdateWorkflow(workflows.UpdateAdd, fmt.Sprintf("add-%v", add), &addCallbacks{done: func(err error) {
				if err == nil {
					if grown, _, err := workflows.Grown(*union, add); err == nil {
						*union = grown
						*log = append(*log, fmt.Sprintf("add %+v while it ran", add))
					}
				}
			}}, add)
		}, at())
	}
	// A user's resume reaches the sweep's latest run: one that the run the
	// pause went to did not live to get goes to the next run.
	resume := func() {
		if signal(env, workflows.SignalResume) {
			w.pausedByUser = false
		}
	}
	if w.pausedByUser {
		env.RegisterDelayedCallback(resume, time.Duration(1+rng.IntN(30))*time.Minute)
	} else if pauses && rng.IntN(3) == 0 { // pause, then resume
		t0 := at()
		env.RegisterDelayedCallback(func() {
			if signal(env, workflows.SignalPause) {
				w.pausedByUser = true
			}
		}, t0)
		env.RegisterDelayedCallback(resume, t0+time.Duration(1+rng.IntN(30))*time.Minute)
	}
	if rng.IntN(4) == 0 {
		t0 := at()
		env.RegisterDelayedCallback(func() {
			*log = append(*log, "cancel")
			signal(env, workflows.SignalCancel)
		}, t0)
	}
	w.mu.Lock()
	down := w.recordDown
	w.mu.Unlock()
	if down { // an outage that outlived the run before it ends in this one
		env.RegisterDelayedCallback(func() { w.setRecordDown(false) }, time.Duration(1+rng.IntN(20))*time.Minute)
	} else if rng.IntN(2) == 0 { // the store refuses RecordResult for a while (up to 20 min: past its retries, now and then)
		t0, d := at(), time.Duration(1+rng.IntN(20))*time.Minute
		env.RegisterDelayedCallback(func() { w.setRecordDown(true) }, t0)
		env.RegisterDelayedCallback(func() { w.setRecordDown(false) }, t0+d)
		*log = append(*log, fmt.Sprintf("RecordResult down from %v for %v", t0.Round(time.Minute), d))
	}
}

// signal sends the running sweep a signal; false when it has ended.
func signal(env *testsuite.TestWorkflowEnvironment, name string) bool {
	if env.IsWorkflowCompleted() {
		return false
	}
	env.SignalWorkflow(name, nil)
	return true
}

func (w *pureWorld) setRecordDown(down bool) {
	w.mu.Lock()
	w.recordDown = down
	w.mu.Unlock()
}

// addCallbacks hears how an UpdateAdd ended.
type addCallbacks struct{ done func(error) }

func (c *addCallbacks) Accept()                           {}
func (c *addCallbacks) Reject(err error)                  { c.done(err) }
func (c *addCallbacks) Complete(_ interface{}, err error) { c.done(err) }

func (w *pureWorld) newEnv(childrenOutlive bool) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Sweep)
	env.RegisterWorkflowWithOptions(w.combination(env), workflow.RegisterOptions{Name: "Combination"})
	acts := &pureActivities{w: w}
	env.RegisterActivity(acts)
	// An epoch takes ten minutes of the test clock, so that what users do
	// and the outages meet trainings mid-way; preparing (a data digest, a
	// download) three, so that they meet Prepare too (a pause stops it).
	env.OnActivity(workflows.ActivityTrainEpoch, mock.Anything, mock.Anything).After(10 * time.Minute).Return(acts.TrainEpoch)
	env.OnActivity(workflows.ActivityPrepare, mock.Anything, mock.Anything).After(3 * time.Minute).Return(acts.Prepare)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.SweepID("oracle")})
	env.SetTestTimeout(30 * time.Second)
	// A run that continues as new leaves its children behind in this
	// environment: they run to their end first (as they outlive the run on
	// a server), or end with it, as if the user terminated them.
	// DescribeChildren and their last signals tell the next run.
	env.SetDetachedChildWait(childrenOutlive)
	// Signals to them (the sweep relays pause, resume and cancel) find
	// no workflow: the server's answer for a closed one.
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		errors.New("workflow not found or already closed"))
	return env
}

// The pure functions a training's figures are.
func pureBase(hash string) float64 {
	h := fnv.New64a()
	h.Write([]byte(hash))
	return 0.5 + float64(h.Sum64()%3000)/10000
}

func pureMetrics(cfg sweep.Config, hash string, epoch int) sweep.EpochMetrics {
	device := float64(cfg.Resolution*cfg.Resolution) / 256 * map[string]float64{"smallcnn": 1, "resnet18": 3}[cfg.Model] * (1 + float64(cfg.Seed)/100)
	return sweep.EpochMetrics{Epoch: epoch, ValLoss: 1 / float64(epoch), ValAcc: pureBase(hash) + float64(epoch)/100,
		Seconds: 1.25 * device, DeviceSeconds: device, ImagesPS: 1000}
}

func pureProgress(cfg sweep.Config, hash string, epochs int) sweep.Progress {
	p := sweep.Progress{EpochsDone: epochs}
	for e := 1; e <= epochs; e++ {
		p.Metrics = append(p.Metrics, pureMetrics(cfg, hash, e))
	}
	if epochs > 0 {
		last := p.Metrics[epochs-1]
		p.BestEpoch, p.BestValLoss, p.BestValAcc = epochs, last.ValLoss, last.ValAcc
	}
	return p
}

func pureTest(hash string, train, test int) float64 {
	return pureBase(hash) - math.Abs(float64(test-train))/1000
}

func epochKey(hash string, epoch int) string {
	return fmt.Sprintf("runs/%.12s/epoch_%04d.json", hash, epoch)
}

// pureActivities are the workers of the pure world.
type pureActivities struct{ w *pureWorld }

var _ workflows.ActivityAPI = (*pureActivities)(nil)

func (a *pureActivities) Prepare(ctx context.Context, in workflows.PrepareInput) (workflows.Prepared, error) {
	cfg := in.Spec.Config(in.Combination)
	cfg.DataHash, cfg.Augment = "pure-data", "cifar"
	if err := a.w.idx.PutSpec(ctx, in.Spec); err != nil {
		return workflows.Prepared{}, err
	}
	h := cfg.Hash()
	return workflows.Prepared{Config: cfg, ConfigHash: h, Family: sweep.FamilyOf(cfg.Model), Prefix: results.RunsPrefix(h), NativeSide: 28}, nil
}

func (a *pureActivities) LookupResult(ctx context.Context, hash string) (workflows.LookupOutput, error) {
	o, by, err := a.w.idx.Lookup(ctx, hash)
	if err != nil || o == nil {
		return workflows.LookupOutput{}, err
	}
	return workflows.LookupOutput{Found: true, Sweep: by, Outcome: *o, Key: results.ResultKey(hash)}, nil
}

func (a *pureActivities) FindResumePoint(_ context.Context, p workflows.Prepared) (workflows.ResumePoint, error) {
	a.w.mu.Lock()
	n := a.w.stored[p.ConfigHash]
	if n > 0 {
		a.w.resumed++
	}
	a.w.mu.Unlock()
	if n == 0 {
		return workflows.ResumePoint{}, nil
	}
	return workflows.ResumePoint{Key: epochKey(p.ConfigHash, n), BestKey: epochKey(p.ConfigHash, n), Progress: pureProgress(p.Config, p.ConfigHash, n)}, nil
}

func (a *pureActivities) TrainEpoch(_ context.Context, in workflows.TrainEpochInput) (workflows.TrainEpochOutput, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	k := fmt.Sprintf("%s/%d", in.ConfigHash, in.Epoch)
	w.attempts[k]++
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", w.seed, k, w.attempts[k])
	if w.faulty && h.Sum64()%10 == 0 { // its worker died: a heartbeat timeout, retried from the checkpoint
		return workflows.TrainEpochOutput{}, errors.New("worker lost")
	}
	w.stored[in.ConfigHash] = max(w.stored[in.ConfigHash], in.Epoch)
	m := pureMetrics(in.Config, in.ConfigHash, in.Epoch)
	out := workflows.TrainEpochOutput{Key: epochKey(in.ConfigHash, in.Epoch), BestKey: epochKey(in.ConfigHash, in.Epoch), Attempt: 1,
		Progress:     sweep.Progress{EpochsDone: in.Epoch, Metrics: []sweep.EpochMetrics{m}, BestEpoch: in.Epoch, BestValLoss: m.ValLoss, BestValAcc: m.ValAcc},
		TrainSeconds: 0.8 * m.Seconds, EvalSeconds: 0.2 * m.Seconds, DeviceSeconds: m.DeviceSeconds, WallSeconds: m.Seconds + 0.5,
		CheckpointSeconds: 0.1, Device: "cpu"}
	if in.Epoch == in.Config.Epochs {
		out.FinalKey = out.Key
	}
	return out, nil
}

func (a *pureActivities) EvaluateAtResolutions(_ context.Context, in workflows.EvaluateInput) (workflows.EvaluateOutput, error) {
	var out workflows.EvaluateOutput
	for _, r := range in.Resolutions {
		out.Results = append(out.Results, sweep.TestResult{Resolution: r, ValAcc: pureTest(in.ConfigHash, in.Config.Resolution, r), Images: 100})
	}
	out.Evaluated, out.Seconds = len(out.Results), 1
	return out, nil
}

func (a *pureActivities) ClaimTraining(context.Context, workflows.ClaimInput) (workflows.ClaimOutput, error) {
	return workflows.ClaimOutput{Granted: true}, nil
}

func (a *pureActivities) RecordResult(ctx context.Context, in workflows.RecordInput) (workflows.RecordOutput, error) {
	w := a.w
	w.mu.Lock()
	down := w.recordDown
	w.mu.Unlock()
	if down {
		w.mu.Lock()
		w.refused++
		w.mu.Unlock()
		return workflows.RecordOutput{}, errors.New("store unavailable")
	}
	w.mu.Lock()
	w.ended[in.Outcome.Status]++
	w.mu.Unlock()
	o := in.Outcome
	if o.EpochsDone > 0 && len(o.Metrics) == 0 { // as the real RecordResult puts back the per-epoch figures
		if o.Status == sweep.Skipped {
			if prev, _, err := w.idx.Lookup(ctx, o.ConfigHash); err == nil && prev != nil {
				o.Metrics = prev.Metrics
			}
		} else {
			cfg := sweep.Config{Model: o.Model, Resolution: o.Resolution, Seed: o.Seed}
			if o.Seed == 0 {
				cfg.Seed = 1
			}
			o.Metrics = pureProgress(cfg, o.ConfigHash, o.EpochsDone).Metrics
		}
	}
	var out workflows.RecordOutput
	if o.Status == sweep.Completed {
		key, err := w.idx.Record(ctx, in.Sweep, o)
		if err != nil && !errors.Is(err, results.ErrAlreadyRecorded) {
			return out, err
		}
		out.Key, o.ResultKey = key, key
	}
	return out, w.idx.PutOutcome(ctx, in.Sweep, o)
}

// DescribeChildren says how the children of earlier runs ended: each
// closed before the next run began (it has a test environment of its
// own), as its workflow ended, or terminated with its run.
func (a *pureActivities) DescribeChildren(_ context.Context, in workflows.ChildrenInput) (workflows.ChildrenOutput, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	var out workflows.ChildrenOutput
	for _, id := range in.IDs {
		c, ok := w.closed[id]
		if !ok {
			c = workflows.ClosedChild{ID: id, Status: sweep.Terminated, Reason: "terminated without recording an outcome"}
			w.closed[id] = c
			w.terminated++
		}
		out.Closed = append(out.Closed, c)
	}
	return out, nil
}

// combination is the Combination workflow, noting how each ended as the
// server would describe it; one that ended after its sweep's run did
// sends its last progress signal to the next run (signalLate).
func (w *pureWorld) combination(env *testsuite.TestWorkflowEnvironment) func(workflow.Context, workflows.CombinationInput) (sweep.Outcome, error) {
	return func(ctx workflow.Context, in workflows.CombinationInput) (sweep.Outcome, error) {
		o, err := workflows.Combination(ctx, in)
		id := workflow.GetInfo(ctx).WorkflowExecution.ID
		c := workflows.ClosedChild{ID: id, Result: &o, Status: o.Status}
		if err != nil {
			c = workflows.ClosedChild{ID: id, Status: sweep.Failed, Reason: "failed without recording an outcome"}
		}
		w.mu.Lock()
		w.closed[id] = c
		if err == nil && env.IsWorkflowCompleted() {
			w.late = append(w.late, o)
		}
		w.mu.Unlock()
		return o, err
	}
}

// signalLate delivers the last progress signals of the children that
// ended after the run they would have told: a signal goes to a workflow's
// latest run.
func (w *pureWorld) signalLate(rng *rand.Rand, env *testsuite.TestWorkflowEnvironment) {
	w.mu.Lock()
	late := w.late
	w.late = nil
	w.mu.Unlock()
	for _, o := range late {
		env.RegisterDelayedCallback(func() {
			if !env.IsWorkflowCompleted() {
				env.SignalWorkflow(workflows.SignalProgress, o)
				w.mu.Lock()
				w.lateSignals++
				w.mu.Unlock()
			}
		}, time.Duration(rng.IntN(120))*time.Second)
	}
}

func (a *pureActivities) TrackTraining(context.Context, workflows.TrackInput) (workflows.TrackOutput, error) {
	return workflows.TrackOutput{}, temporal.NewNonRetryableApplicationError("tracking is off", workflows.ErrTypeTracking, nil)
}

func (a *pureActivities) TrackSweep(context.Context, workflows.TrackSweepInput) (workflows.TrackOutput, error) {
	return workflows.TrackOutput{}, temporal.NewNonRetryableApplicationError("tracking is off", workflows.ErrTypeTracking, nil)
}

func (a *pureActivities) FindTracked(context.Context, workflows.FindTrackedInput) (workflows.LookupOutput, error) {
	return workflows.LookupOutput{}, nil
}

// oracleRow is what one clean sweep of the union reports of a training.
type oracleRow struct {
	model       string
	res         int
	seed        uint64 // the seed it trains with
	acc, hours  float64
	test        map[int]float64
	hash        string
	combination sweep.Combination
}

// oracle is the report of one clean sweep of spec: each distinct training
// once, with its pure figures.
func oracle(spec sweep.Spec) []oracleRow {
	var rows []oracleRow
	seen := map[string]bool{}
	for _, c := range spec.Combinations() {
		cfg := spec.Config(c)
		cfg.DataHash, cfg.Augment = "pure-data", "cifar"
		h := cfg.Hash()
		if seen[h] {
			continue
		}
		seen[h] = true
		p := pureProgress(cfg, h, spec.Epochs)
		var device float64
		for _, m := range p.Metrics {
			device += m.DeviceSeconds
		}
		row := oracleRow{model: c.Model, res: c.Resolution, seed: cfg.Seed, acc: p.BestValAcc, hours: device / 3600, test: map[int]float64{}, hash: h, combination: c}
		for _, r := range spec.EffectiveTestResolutions() {
			row.test[r] = pureTest(h, c.Resolution, r)
		}
		rows = append(rows, row)
	}
	return rows
}

// check holds the report of the sweep's last run against the oracle.
func (w *pureWorld) check(union sweep.Spec) []string {
	var bad []string
	r, err := Build(context.Background(), w.st, union.Name)
	if err != nil {
		return []string{"report: " + err.Error()}
	}
	want := oracle(union)
	byHash := map[string]Row{}
	for _, row := range r.Rows {
		if row.ConfigHash == "" {
			bad = append(bad, fmt.Sprintf("row %s@%d seed %d (%s) names no training: %s", row.Model, row.Resolution, row.Seed, row.Status, row.Reason))
			continue
		}
		if _, dup := byHash[row.ConfigHash]; dup {
			bad = append(bad, fmt.Sprintf("%s@%d seed %d: the training %.12s has two rows", row.Model, row.Resolution, row.Seed, row.ConfigHash))
		}
		byHash[row.ConfigHash] = row
	}
	if len(r.Rows) != len(want) {
		bad = append(bad, fmt.Sprintf("%d rows, the clean sweep of the union has %d", len(r.Rows), len(want)))
	}
	tests := testRows(r)
	for _, o := range want {
		row, ok := byHash[o.hash]
		name := fmt.Sprintf("%s@%d seed %d", o.model, o.res, o.seed)
		switch {
		case !ok:
			bad = append(bad, name+": no row")
			continue
		case row.Status != string(sweep.Completed) && row.Status != string(sweep.Skipped):
			bad = append(bad, fmt.Sprintf("%s: %s (%s)", name, row.Status, row.Reason))
			continue
		case row.BestValAcc == nil || math.Abs(*row.BestValAcc-o.acc) > 1e-12:
			bad = append(bad, fmt.Sprintf("%s: best accuracy %v, want %.4f", name, fmtF(row.BestValAcc), o.acc))
		case row.ComputeHours == nil || math.Abs(*row.ComputeHours-o.hours) > 1e-9*o.hours:
			bad = append(bad, fmt.Sprintf("%s: compute hours %v, want %.6g (%s)", name, fmtF(row.ComputeHours), o.hours, row.Status))
		case row.PerEpoch == nil:
			bad = append(bad, fmt.Sprintf("%s: no time split (%s)", name, row.Status))
		case row.Keys.Best == "" || row.Keys.Final == "":
			bad = append(bad, fmt.Sprintf("%s: best model %q, final model %q (%s)", name, row.Keys.Best, row.Keys.Final, row.Status))
		}
		for res, acc := range o.test {
			if got, ok := tests[testKey{o.model, o.res, row.Seed, res}]; !ok || math.Abs(got-acc) > 1e-9 {
				bad = append(bad, fmt.Sprintf("%s: train x test row at %d px: %v (present %v), want %.4f", name, res, got, ok, acc))
			}
		}
	}
	// Seeds per cell: the distinct trainings of each (model, resolution).
	cells := map[cellKey]int{}
	for _, o := range want {
		cells[cellKey{o.model, o.res}]++
	}
	for k, iv := range r.cellIntervals() {
		if iv.N != cells[k] {
			bad = append(bad, fmt.Sprintf("%s@%d: %d seeds in its interval, the union has %d", k.model, k.res, iv.N, cells[k]))
		}
	}
	// The Pareto front: of the union's trainings by their own figures.
	var cost, acc []float64
	for _, o := range want {
		cost, acc = append(cost, o.hours), append(acc, o.acc)
	}
	var wantFront []string
	for _, i := range ParetoFront(cost, acc) {
		wantFront = append(wantFront, want[i].hash)
	}
	costed := r.costed()
	cost, acc = nil, nil
	for _, x := range costed {
		cost, acc = append(cost, *x.ComputeHours), append(acc, *x.BestValAcc)
	}
	var gotFront []string
	for _, i := range ParetoFront(cost, acc) {
		gotFront = append(gotFront, costed[i].ConfigHash)
	}
	sort.Strings(wantFront)
	sort.Strings(gotFront)
	if !slices.Equal(wantFront, gotFront) {
		bad = append(bad, fmt.Sprintf("Pareto front %d trainings %v, the union's %d %v", len(gotFront), short(gotFront), len(wantFront), short(wantFront)))
	}
	return bad
}

func short(hashes []string) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = fmt.Sprintf("%.8s", h)
	}
	return out
}

type testKey struct {
	model string
	train int
	seed  uint64
	test  int
}

// testRows reads the report's train x test rows (test_resolutions.csv).
func testRows(r *Report) map[testKey]float64 {
	var b bytes.Buffer
	if err := r.writeTestCSV(&b); err != nil {
		return nil
	}
	out := map[testKey]float64{}
	cr := csv.NewReader(&b)
	cr.Read() // header
	for {
		rec, err := cr.Read()
		if err != nil {
			return out
		}
		train, _ := strconv.Atoi(rec[1])
		test, _ := strconv.Atoi(rec[2])
		seed, _ := strconv.ParseUint(rec[3], 10, 64)
		acc, err := strconv.ParseFloat(rec[4], 64)
		if err == nil {
			out[testKey{rec[0], train, seed, test}] = acc
		}
	}
}

// memStore is a store.Store in memory, for the thousands of schedules.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

var _ store.Store = (*memStore)(nil)

func (m *memStore) Put(_ context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = b
	return nil
}

func (m *memStore) PutIfAbsent(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return store.ErrExists
	}
	m.objects[key] = slices.Clone(data)
	return nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) Stat(_ context.Context, key string) (store.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return store.Info{}, fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	return store.Info{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) List(_ context.Context, prefix string) ([]store.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Info
	for k, b := range m.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, store.Info{Key: k, Size: int64(len(b))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *memStore) URL() string { return "mem://oracle" }
