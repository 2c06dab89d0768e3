package workflows

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// An adversary for the workflows: randomised schedules (seeded; the seed
// is printed on failure) that mix pause, resume and cancel, sweep-wide and
// per combination, with continue-as-new after every finished child, seeds,
// children of earlier runs that are terminated or end without their last
// signal, epochs whose worker dies (a heartbeat timeout) or whose
// attempt fails, and (half the time) an MLflow server that goes down or
// refuses. After each run: the sweep ended; every combination is in
// the state the last command asked for; no epoch started while its
// combination was paused; outcomes match their combinations (each seed's
// own figures); nothing was recorded twice; a tracked sweep's runs are
// up to date when the server came back, and it says why when it refused.
//
// RESOMAP_ADVERSARY_RUNS sets the number of runs (make chaos runs more);
// RESOMAP_ADVERSARY_SEED replays one schedule.
func TestAdversarialSchedules(t *testing.T) {
	runs, seed := 600, uint64(time.Now().UnixNano()) // about 10 s
	if testing.Short() {
		runs = 100
	}
	if v, err := strconv.Atoi(os.Getenv("RESOMAP_ADVERSARY_RUNS")); err == nil {
		runs = v
	}
	if v, err := strconv.ParseUint(os.Getenv("RESOMAP_ADVERSARY_SEED"), 10, 64); err == nil {
		seed, runs = v, 1
	}
	started := time.Now()
	for i := range runs {
		s := seed + uint64(i)
		if problems := adversaryRun(t, s); len(problems) > 0 {
			t.Fatalf("schedule %d (replay: RESOMAP_ADVERSARY_SEED=%d go test -run TestAdversarialSchedules ./workflows):\n%s",
				s, s, strings.Join(problems, "\n"))
		}
	}
	t.Logf("%d schedules from seed %d in %v", runs, seed, time.Since(started))
}

// adversary is one schedule's world: what the commands asked for, what the
// children of earlier runs (ghosts) do, and what was trained and recorded.
type adversary struct {
	seed     uint64
	rng      *rand.Rand // the schedule's: used before and between runs only
	attempts map[string]int
	w        *world
	spec     sweep.Spec
	epoch    time.Duration
	combos   []sweep.Combination
	paused   map[int]bool // per combination, as the commands left it
	sweepOff bool         // the sweep is paused
	// sweepCancelled: the sweep was cancelled.
	sweepCancelled bool
	cancel         map[int]bool // cancel asked (per combination or sweep-wide)
	ghosts         map[int]*ghost
	fate           map[int]sweep.Status // combinations whose workflow is ended from outside
	problems       []string
	// pausedSince is, per combination, the test clock time it was paused
	// in this run (zero: not paused).
	pausedSince map[int]time.Time
	// tracker is the MLflow server of a tracked sweep (nil: untracked):
	// down for outage every period, or refusing every call.
	tracker        *fakeTracker
	outage, period time.Duration
}

// ghost is a combination workflow started by an earlier run of the sweep,
// as the current run sees it: it trains while not paused, reports by
// signal, and may close without a last signal.
type ghost struct {
	paused, closed bool
	// recorded: it recorded its end while an earlier run was continuing
	// as new; its last signal comes to this run.
	recorded sweep.Status
}

func adversaryRun(t *testing.T, seed uint64) (problems []string) {
	defer func() {
		// The SDK's test server panics when a run blocks with nothing left
		// to happen (a sweep that waits for ever).
		if r := recover(); r != nil {
			problems = append(problems, fmt.Sprintf("the sweep hung: %v", r))
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 7))
	spec := testSpec([]int{16, 24, 32}[:1+rng.IntN(3)]...)
	spec.Name = "adv"
	spec.Epochs, spec.MaxParallel, spec.ContinueAsNewAfter = 2+rng.IntN(3), 1+rng.IntN(3), 1
	if rng.IntN(2) == 0 {
		spec.Seeds = []uint64{1, 2}
	}
	adv := &adversary{seed: seed, rng: rng, attempts: map[string]int{}, w: newWorld(), spec: spec, epoch: time.Duration(1+rng.IntN(20)) * time.Minute,
		combos: spec.Combinations(), paused: map[int]bool{}, cancel: map[int]bool{}, ghosts: map[int]*ghost{},
		fate: map[int]sweep.Status{}, pausedSince: map[int]time.Time{}}
	adv.w.fail, adv.w.retireWithRun = adv.attemptFate, true
	if rng.IntN(2) == 0 {
		// Tracked, by a server that goes down for up to 7 minutes at a
		// time (the SDK's test environment retries an activity 10 times,
		// about 8.5 minutes, where a real server retries without end), or
		// (now and then) refuses the credentials.
		adv.spec.Tracking = sweep.TrackingSettings{URI: "http://mlflow.test", SkipCompleted: rng.IntN(2) == 0}
		adv.tracker = &fakeTracker{refuse: rng.IntN(8) == 0, finished: map[string]bool{}}
		adv.period = time.Duration(15+rng.IntN(30)) * time.Minute
		adv.outage = time.Duration(rng.IntN(8)) * time.Minute
		spec = adv.spec
	}
	in := SweepInput{Spec: spec}
	for generation := 0; ; generation++ {
		if generation > 40 {
			return append(adv.problems, "more than 40 continue-as-new generations")
		}
		env := adv.newEnv(in)
		env.ExecuteWorkflow(Sweep, in)
		if !env.IsWorkflowCompleted() {
			return append(adv.problems, fmt.Sprintf("generation %d: the sweep did not end", generation))
		}
		var can *workflow.ContinueAsNewError
		err := env.GetWorkflowError()
		if errors.As(err, &can) {
			in = continuedAs(t, env)
			adv.becomeGhosts(in.Carry)
			continue
		}
		if err != nil {
			return append(adv.problems, fmt.Sprintf("generation %d: sweep failed: %v", generation, err))
		}
		var p SweepProgress
		if err := env.GetWorkflowResult(&p); err != nil {
			return append(adv.problems, err.Error())
		}
		adv.check(p)
		return adv.problems
	}
}

// attemptFate decides how an epoch attempt ends: mostly it trains; its
// worker may die (a heartbeat timeout) or it may fail for a passing reason.
// The fate is drawn from (seed, training, epoch, attempt), so a schedule
// replays the same whatever order the attempts run in.
func (adv *adversary) attemptFate(_ context.Context, in TrainEpochInput) error {
	k := fmt.Sprintf("%s/%d", trainingOf(in.Config), in.Epoch)
	adv.attempts[k]++
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", adv.seed, k, adv.attempts[k])
	switch r := float64(h.Sum64()%1000) / 1000; {
	case r < 0.08:
		return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
	case r < 0.14:
		return errors.New("a passing failure")
	}
	return nil
}

func (adv *adversary) index(c sweep.Combination) int {
	for i, x := range adv.combos {
		if x == c {
			return i
		}
	}
	return -1
}

// newEnv is a test server for one run of the sweep, with the schedule's
// commands and the ghosts' behaviour.
func (adv *adversary) newEnv(in SweepInput) *testsuite.TestWorkflowEnvironment {
	env := newLifecycleEnv(adv.w, adv.epoch)
	if adv.tracker != nil {
		start := env.Now()
		adv.tracker.down = func(now time.Time) bool { return now.Sub(start)%adv.period >= adv.period-adv.outage }
		adv.tracker.register(env)
	}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: SweepID(adv.spec.Name)})
	env.SetTestTimeout(20 * time.Second)
	// Children outlive a run that continues as new; the next run stands in
	// for them (ghosts), so this one need not wait for them.
	env.SetDetachedChildWait(false)
	// The commands: at random times, sweep-wide or to one combination.
	horizon := time.Duration(adv.spec.Epochs*len(adv.combos)+2) * adv.epoch
	for range adv.rng.IntN(6) {
		at := time.Duration(adv.rng.Int64N(int64(horizon)))
		cmd := []string{SignalPause, SignalResume, SignalPause, SignalResume, SignalCancel}[adv.rng.IntN(5)]
		target := -1
		if adv.rng.IntN(2) == 0 {
			target = adv.rng.IntN(len(adv.combos))
		}
		env.RegisterDelayedCallback(func() { adv.command(env, cmd, target) }, at)
	}
	// Children of earlier runs may be terminated from outside.
	for i := range adv.ghosts {
		if adv.rng.IntN(4) == 0 {
			at := time.Duration(adv.rng.Int64N(int64(horizon)))
			env.RegisterDelayedCallback(func() { adv.terminate(i) }, at)
		}
	}
	// At the end of the schedule everything paused is resumed, so the
	// sweep can end.
	env.RegisterDelayedCallback(func() { adv.command(env, SignalResume, -1) }, horizon+time.Minute)
	for i := range adv.combos {
		env.RegisterDelayedCallback(func() { adv.command(env, SignalResume, i) }, horizon+2*time.Minute)
	}
	// Ghosts train on, one epoch per tick.
	for k := 1; k <= 3*adv.spec.Epochs*len(adv.combos)+6; k++ {
		env.RegisterDelayedCallback(func() { adv.tickGhosts(env) }, time.Duration(k)*adv.epoch)
	}
	env.OnSignalExternalWorkflow(mockAny, mockAny, mockAny, mockAny, mockAny).Return(
		func(_, id, _, signal string, _ any) error { return adv.toGhost(env, id, signal) })
	for i := range adv.combos {
		adv.pausedSince[i] = time.Time{}
		if adv.paused[i] || adv.sweepOff {
			adv.pausedSince[i] = env.Now()
		}
	}
	adv.w.onStart = func(training string, at time.Time) { adv.checkNotPaused(training, at) }
	return env
}

// command sends a control command and notes what it asks for: the
// sweep's control refuses what makes no sense (resuming a running sweep),
// and a command to one combination reaches only a running one.
func (adv *adversary) command(env *testsuite.TestWorkflowEnvironment, cmd string, target int) {
	if env.IsWorkflowCompleted() {
		return // this run continued as new: its signals are lost with it
	}
	switch {
	case target < 0:
		env.SignalWorkflow(cmd, nil)
		if cmd == SignalPause && adv.sweepOff || cmd == SignalResume && !adv.sweepOff || cmd == SignalCancel && adv.sweepCancelled {
			return
		}
	case adv.ghosts[target] != nil:
		if adv.toGhost(env, ChildID(SweepID(adv.spec.Name), adv.combos[target].ID()), cmd) != nil {
			return
		}
	default:
		if err := env.SignalWorkflowByID(ChildID(SweepID(adv.spec.Name), adv.combos[target].ID()), cmd, nil); err != nil {
			return // not started in this run, or ended: nothing asked
		}
	}
	for i := range adv.combos {
		if target >= 0 && i != target {
			continue
		}
		switch cmd {
		case SignalPause:
			adv.paused[i] = true
			if adv.pausedSince[i].IsZero() {
				adv.pausedSince[i] = env.Now()
			}
		case SignalResume:
			adv.paused[i] = false
			adv.pausedSince[i] = time.Time{}
		case SignalCancel:
			adv.cancel[i] = true
		}
	}
	if target < 0 {
		adv.sweepOff = adv.sweepOff && cmd != SignalResume || cmd == SignalPause
		adv.sweepCancelled = adv.sweepCancelled || cmd == SignalCancel
	}
}

// checkNotPaused: an epoch attempt of training may start only while its
// combination is not paused (a pause at the very same instant may still
// be on its way).
func (adv *adversary) checkNotPaused(training string, at time.Time) {
	for i, c := range adv.combos {
		if trainingOf(adv.spec.Config(c)) != training {
			continue
		}
		if since := adv.pausedSince[i]; !since.IsZero() && at.After(since) && !adv.cancel[i] {
			adv.problems = append(adv.problems, fmt.Sprintf("%s: an epoch started %v after it was paused", c.ID(), at.Sub(since)))
		}
	}
}

// becomeGhosts turns the children still running at a continue-as-new into
// ghosts of the next run.
func (adv *adversary) becomeGhosts(carry *SweepCarry) {
	adv.w.mu.Lock()
	defer adv.w.mu.Unlock()
	for _, i := range carry.Running {
		if adv.ghosts[i] == nil {
			g := &ghost{paused: adv.paused[i] || adv.sweepOff}
			if st := adv.w.recorded[fmt.Sprintf("%s@%d/%d", adv.combos[i].Model, adv.combos[i].Resolution, adv.combos[i].Seed)]; len(st) > 0 {
				g.recorded = st[len(st)-1]
			}
			adv.ghosts[i] = g
		}
	}
}

func (adv *adversary) ghostOf(id string) (int, *ghost) {
	for i, g := range adv.ghosts {
		if ChildID(SweepID(adv.spec.Name), adv.combos[i].ID()) == id {
			return i, g
		}
	}
	return -1, nil
}

// toGhost delivers a relayed command to a ghost.
func (adv *adversary) toGhost(env *testsuite.TestWorkflowEnvironment, id, signal string) error {
	i, g := adv.ghostOf(id)
	if g == nil || g.closed {
		return errors.New("workflow not found or closed")
	}
	switch signal {
	case SignalPause:
		g.paused = true
	case SignalResume:
		g.paused = false
	case SignalCancel: // it checkpoints, records and reports its end
		st := sweep.Cancelled
		if g.recorded != "" {
			st = g.recorded // it had ended already
		}
		adv.closeGhost(env, i, st, true)
	}
	return nil
}

// terminate ends a ghost's workflow from outside (terminated from the
// CLI, or past its run timeout): no last signal.
func (adv *adversary) terminate(i int) {
	if g := adv.ghosts[i]; g != nil && !g.closed && g.recorded == "" {
		g.closed = true
		adv.fate[i] = []sweep.Status{sweep.Terminated, sweep.TimedOut}[adv.rng.IntN(2)]
		id := ChildID(SweepID(adv.spec.Name), adv.combos[i].ID())
		adv.w.mu.Lock()
		adv.w.closed[id] = ClosedChild{ID: id, Status: adv.fate[i], Reason: string(adv.fate[i]) + " from outside"}
		adv.w.mu.Unlock()
	}
}

// tickGhosts trains one epoch of every running, unpaused ghost.
func (adv *adversary) tickGhosts(env *testsuite.TestWorkflowEnvironment) {
	if env.IsWorkflowCompleted() {
		return
	}
	for i, g := range adv.ghosts {
		if !g.closed && g.recorded != "" {
			adv.closeGhost(env, i, g.recorded, true)
			continue
		}
		if g.closed || g.paused {
			continue
		}
		cfg := adv.spec.Config(adv.combos[i])
		adv.w.mu.Lock()
		adv.w.done[trainingOf(cfg)] = min(adv.w.done[trainingOf(cfg)]+1, adv.spec.Epochs)
		done := adv.w.done[trainingOf(cfg)]
		adv.w.mu.Unlock()
		if done < adv.spec.Epochs {
			env.SignalWorkflow(SignalProgress, adv.ghostOutcome(i, sweep.Running))
			continue
		}
		// Completed; one in four ends without its last signal (its record
		// failed, or the signal was lost): the sweep must ask the server.
		adv.closeGhost(env, i, sweep.Completed, adv.rng.IntN(4) != 0)
	}
}

func (adv *adversary) ghostOutcome(i int, st sweep.Status) sweep.Outcome {
	c := adv.combos[i]
	cfg := adv.spec.Config(c)
	adv.w.mu.Lock()
	done := adv.w.done[trainingOf(cfg)]
	adv.w.mu.Unlock()
	return sweep.Outcome{
		Identity: sweep.Identity{Model: c.Model, Family: "cnn", Resolution: c.Resolution, Seed: c.Seed},
		Epochs:   adv.spec.Epochs, Status: st, Progress: progressOf(cfg, done),
	}
}

// closeGhost ends ghost i with status; it records its outcome as a real
// combination does, and reports it by signal if signalled.
func (adv *adversary) closeGhost(env *testsuite.TestWorkflowEnvironment, i int, st sweep.Status, signalled bool) {
	g := adv.ghosts[i]
	g.closed = true
	o := adv.ghostOutcome(i, st)
	id := ChildID(SweepID(adv.spec.Name), adv.combos[i].ID())
	adv.w.mu.Lock()
	if g.recorded == "" {
		training := fmt.Sprintf("%s@%d/%d", o.Model, o.Resolution, o.Seed)
		adv.w.recorded[training] = append(adv.w.recorded[training], st)
	}
	adv.w.closed[id] = ClosedChild{ID: id, Result: &o, Status: st}
	adv.w.mu.Unlock()
	if signalled {
		env.SignalWorkflow(SignalProgress, o)
	}
}

// check holds the run's end against what was asked.
func (adv *adversary) check(p SweepProgress) {
	bad := func(format string, args ...any) { adv.problems = append(adv.problems, fmt.Sprintf(format, args...)) }
	if len(p.Combos) != len(adv.combos) {
		bad("%d outcomes for %d combinations", len(p.Combos), len(adv.combos))
		return
	}
	if t := adv.tracker; t != nil && !t.refuse && !adv.sweepCancelled {
		// The server is down for 7 minutes at most: the sweep's own run
		// waited for it and brought every run up to date (a cancelled
		// sweep waits two minutes at most).
		if p.Tracking != "" {
			bad("the sweep ended with its tracking %q", p.Tracking)
		}
		for _, o := range p.Combos {
			if o.Tracking != "" {
				bad("%s: tracking %q after the sweep caught up", o.ID(), o.Tracking)
			}
		}
	}
	if t := adv.tracker; t != nil && t.refuse && p.Tracking == "" {
		bad("a tracking server that refuses every call, and the sweep does not say so")
	}
	for i, o := range p.Combos {
		c := adv.combos[i]
		want := map[sweep.Status]bool{sweep.Completed: true}
		switch {
		case adv.fate[i] != "":
			want = map[sweep.Status]bool{adv.fate[i]: true, sweep.Completed: true}
		case adv.cancel[i]:
			want = map[sweep.Status]bool{sweep.Cancelled: true, sweep.Completed: true}
		}
		if !want[o.Status] {
			bad("%s: %s (%s), want one of %v", c.ID(), o.Status, o.Reason, want)
		}
		if o.Seed != c.Seed || o.Resolution != c.Resolution {
			bad("row of %s holds %s", c.ID(), o.ID())
		}
		if o.Status == sweep.Completed {
			cfg := adv.spec.Config(c)
			if o.EpochsDone != adv.spec.Epochs || o.BestValAcc != metricsFor(cfg, adv.spec.Epochs).ValAcc {
				bad("%s completed with %d epochs, best %.3f: not its own figures", c.ID(), o.EpochsDone, o.BestValAcc)
			}
		}
	}
	adv.w.mu.Lock()
	defer adv.w.mu.Unlock()
	for training, statuses := range adv.w.recorded {
		if len(statuses) > 1 {
			bad("%s recorded %d times: %v", training, len(statuses), statuses)
		}
	}
}
