package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// Sweep runs every combination of a spec as a child workflow, at most
// MaxParallel at a time. A failing combination never stops the others; the
// result lists every combination's outcome.
func Sweep(ctx workflow.Context, in SweepInput) (SweepProgress, error) {
	s, err := newSweep(ctx, in)
	if err != nil {
		return SweepProgress{}, err
	}
	if err := s.setup(ctx); err != nil {
		return SweepProgress{}, err
	}
	return s.run(ctx)
}

// sweepRun is the Sweep workflow's state.
type sweepRun struct {
	spec    sweep.Spec
	id      string // this workflow's ID; children's IDs derive from it
	combos  []sweep.Combination
	next    int   // index of the next combination to start
	running []int // indices of running children, in start order
	// live are the running children's outcomes as their progress signals
	// tell them; book keeps the ended ones (ledger.go).
	live     map[int]sweep.Outcome
	book     *ledger
	children map[int]workflow.ChildWorkflowFuture
	// detached are the running children started to outlive a run of the
	// sweep (abandon on close); children of earlier runs are too.
	detached map[int]bool
	// relayed is the last control command relayed to each running child.
	relayed map[int]workflow.Future
	ctl     *control
	runs    int // continue-as-new generations
	// events counts what the main loop waits for: children ending, control
	// and progress signals, cancellation.
	events int
	// finishedThisRun counts children ended in this run: each adds a
	// handful of events to the history.
	finishedThisRun int
	// bySeed and reconcile say whether this run takes those changes
	// (changeProgressBySeed, changeReconcileChildren).
	bySeed, reconcile bool
	// reconciling: a look at how earlier runs' children stand is under way.
	reconciling bool
	// tracking: how the sweep's MLflow run stands (finishTracking).
	tracking string
	// growth is how the sweep grew (UpdateAdd), carried across
	// continue-as-new; legacyCombos: an earlier run carried the grown
	// list itself, which is carried on. finishing: every combination has
	// ended and no more can be added.
	growth                  *Growth
	legacyCombos, finishing bool
	// began: when the sweep's first run started.
	began time.Time
}

// newSweep validates the spec and takes over the state of a previous run.
func newSweep(ctx workflow.Context, in SweepInput) (*sweepRun, error) {
	spec := in.Spec // completed when decoded (sweep.Spec.UnmarshalJSON)
	if err := validSpec(ctx, in); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
	}
	s := &sweepRun{spec: spec, combos: spec.Combinations(), children: map[int]workflow.ChildWorkflowFuture{},
		detached: map[int]bool{}, relayed: map[int]workflow.Future{}, id: workflow.GetInfo(ctx).WorkflowExecution.ID,
		live: map[int]sweep.Outcome{}, book: newLedger()}
	s.ctl = &control{what: "sweep " + spec.Name, finished: func() bool { return false }, changed: s.controlled,
		answer: func() any { return s.progress() }}
	s.began = workflow.GetInfo(ctx).WorkflowStartTime
	if c := in.Carry; c != nil {
		return s, s.takeCarry(c)
	}
	return s, nil
}

// takeCarry takes over the state continue-as-new carried, in either form.
func (s *sweepRun) takeCarry(c *SweepCarry) error {
	s.next, s.ctl.paused, s.ctl.cancelled, s.runs, s.running = c.Next, c.Paused, c.Cancelled, c.Runs, c.Running
	if !c.Began.IsZero() {
		s.began = c.Began
	}
	switch {
	case c.Combos != nil:
		s.combos, s.legacyCombos = c.Combos, true
	case c.Growth != nil:
		combos, err := c.Growth.Combinations()
		if err != nil {
			// Failing the sweep would leave its running children with no
			// one to follow them: the workflow task fails (and is retried)
			// until a worker that can grow it again takes it.
			panic(fmt.Sprintf("sweep %s cannot be grown again as it grew: %v", s.spec.Name, err))
		}
		s.combos, s.growth = combos, c.Growth
	}
	if c.Outcomes != nil { // carried before the ledger: every outcome
		for i, o := range c.Outcomes {
			switch {
			case slices.Contains(s.running, i):
				s.live[i] = o
			case i < s.next && o.Status.Done(): // (one not started may show a sibling seed's signal)
				s.book.add(i, o, s.listAll())
			}
		}
		if s.ctl.cancelled {
			s.book.unstarted = s.countUnstarted(c.Outcomes)
		}
		return nil
	}
	s.book = ledgerFrom(c.Ledger)
	for k, i := range s.running {
		o := s.pendingOutcome(i)
		o.Status = sweep.Running
		if k < len(c.Live) {
			o = c.Live[k]
		}
		s.live[i] = o
	}
	return nil
}

// Combinations are the grown sweep's combinations in the order they train.
func (g *Growth) Combinations() ([]sweep.Combination, error) {
	spec, combos := g.Base, g.Base.Combinations()
	for _, in := range g.Adds {
		grown, added, err := regrown(spec, in)
		if err != nil {
			return nil, fmt.Errorf("sweep %s grown again by %+v: %w", spec.Name, in, err)
		}
		spec, combos = grown, append(combos, added...)
	}
	return combos, nil
}

// trimLedger trims the ledger of a sweep too large to list every ended
// outcome to what it keeps (it trims as it goes, in steps).
func (s *sweepRun) trimLedger() {
	if !s.listAll() {
		s.book.trim()
	}
}

// listAll: the sweep is small enough to keep every ended outcome.
func (s *sweepRun) listAll() bool { return len(s.combos) <= ListAllUpTo }

// pendingOutcome is combination i's outcome before it starts.
func (s *sweepRun) pendingOutcome(i int) sweep.Outcome { return s.spec.Pending(s.combos[i]) }

func (s *sweepRun) progress() SweepProgress {
	spec := s.spec
	return SweepProgress{Name: s.spec.Name, Paused: s.ctl.paused, Cancelled: s.ctl.cancelled, Runs: s.runs,
		Done: s.next >= len(s.combos) && len(s.running) == 0, Combos: s.rows(), Total: len(s.combos), Counts: s.counts(),
		Spec: &spec, Growth: s.growth, Next: s.next, Unstarted: s.book.unstarted, Began: s.began, Tracking: s.tracking}
}

// countUnstarted counts the combinations at the end of a carried list of
// outcomes that were cancelled before they started.
func (s *sweepRun) countUnstarted(outcomes []sweep.Outcome) int {
	n := 0
	for i := len(outcomes) - 1; i >= 0 && outcomes[i].Status == sweep.Cancelled && outcomes[i].Reason == ReasonUnstarted; i-- {
		n++
	}
	return n
}

// Order is the sweep's combinations in the order they train (the spec's
// when the progress says nothing of how it grew).
func (p SweepProgress) Order() []sweep.Combination {
	if p.Growth != nil {
		if combos, err := p.Growth.Combinations(); err == nil {
			return combos
		}
	}
	if p.Spec == nil {
		return nil
	}
	return p.Spec.Combinations()
}

// rows are the outcomes the sweep shows, in its order of combinations:
// every one in a small sweep; the running ones and those the ledger keeps
// in a larger one.
func (s *sweepRun) rows() []sweep.Outcome {
	byIndex := map[int]sweep.Outcome{}
	for _, e := range s.book.listed {
		byIndex[e.Index] = e.Outcome
	}
	for _, i := range s.running {
		byIndex[i] = s.live[i]
	}
	if s.listAll() {
		for i := s.next; i < len(s.combos); i++ {
			byIndex[i] = s.pendingOutcome(i)
		}
	}
	order := slices.Sorted(maps.Keys(byIndex))
	rows := make([]sweep.Outcome, 0, len(order))
	for _, i := range order {
		rows = append(rows, byIndex[i])
	}
	return rows
}

// counts counts the sweep's combinations by status.
func (s *sweepRun) counts() map[sweep.Status]int {
	c := maps.Clone(s.book.counts)
	c[sweep.Pending] += len(s.combos) - s.next
	for _, i := range s.running {
		c[s.live[i].Status]++
	}
	maps.DeleteFunc(c, func(_ sweep.Status, n int) bool { return n == 0 })
	return c
}

// setup answers queries, control and children's progress, and watches for
// the workflow's own cancellation.
func (s *sweepRun) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (SweepProgress, error) { return s.progress(), nil }); err != nil {
		return err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrSweep.ValueSet(s.spec.Name), AttrStatus.ValueSet("running"))
	s.bySeed = since(ctx, changeProgressBySeed)
	s.reconcile = since(ctx, changeReconcileChildren)
	if err := s.ctl.listen(ctx); err != nil {
		return err
	}
	if err := s.listenForAdd(ctx); err != nil {
		return err
	}
	progress := workflow.GetSignalChannel(ctx, SignalProgress)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var o sweep.Outcome
			progress.Receive(gctx, &o)
			s.takeProgress(o)
		}
	})
	// A cancelled workflow (temporal workflow cancel) counts as a cancel;
	// its children are cancelled with it and checkpoint first.
	workflow.Go(ctx, func(gctx workflow.Context) {
		gctx.Done().Receive(gctx, nil)
		s.ctl.cancelled = true
		// Children of earlier runs are not cancelled with this run's context.
		dctx, _ := workflow.NewDisconnectedContext(gctx)
		for _, i := range s.running {
			if s.children[i] == nil {
				_ = workflow.SignalExternalWorkflow(dctx, ChildID(s.id, s.combos[i].ID()), "", SignalCancel, nil)
			}
		}
		s.events++
	})
	return nil
}

// takeProgress records a running child's progress. A child started by an
// earlier run (no future here) ends with its last progress signal.
func (s *sweepRun) takeProgress(o sweep.Outcome) {
	o.Summarise()
	for _, i := range slices.Clone(s.running) { // ended changes the list
		c := s.combos[i]
		same := c.Model == o.Model && c.Resolution == o.Resolution
		if s.bySeed {
			same = c.ID() == o.ID()
		}
		if !same || s.live[i].Status.Done() {
			continue
		}
		s.live[i] = o
		if o.Status.Done() && s.children[i] == nil {
			s.ended(i, o)
		}
	}
	s.events++
}

// controlled relays a pause, resume or cancel that took effect to every
// running child, in start order.
func (s *sweepRun) controlled(ctx workflow.Context, cmd string) {
	for _, i := range s.running {
		o := s.live[i]
		switch {
		case o.Status.Done():
			continue // ended; its result is on its way
		case cmd == SignalPause:
			o.Status = sweep.Paused
		case cmd == SignalResume:
			o.Status = sweep.Running
		}
		s.live[i] = o
	}
	onceStarted := since(ctx, changeSignalOnceStarted)
	ordered := since(ctx, changeRelayInOrder)
	for _, i := range s.running {
		if !onceStarted {
			_ = workflow.SignalExternalWorkflow(ctx, ChildID(s.id, s.combos[i].ID()), "", cmd, nil)
			continue
		}
		s.relay(ctx, i, cmd, ordered)
	}
	s.events++
}

// relay sends a control command to running child i. A child whose start
// is still in flight would miss a signal sent now (and run on while the
// sweep says paused); SignalChildWorkflow waits for the start. In order,
// each command to a child is sent once the one before it was delivered:
// two signals sent at once may arrive in either order, and a resume that
// overtakes its pause would leave the child paused.
func (s *sweepRun) relay(ctx workflow.Context, i int, cmd string, ordered bool) {
	f := s.children[i]
	send := func(gctx workflow.Context) error {
		if f != nil {
			return f.SignalChildWorkflow(gctx, cmd, nil).Get(gctx, nil)
		}
		// Started by an earlier run: started for sure.
		return workflow.SignalExternalWorkflow(gctx, ChildID(s.id, s.combos[i].ID()), "", cmd, nil).Get(gctx, nil)
	}
	if !ordered {
		workflow.Go(ctx, func(gctx workflow.Context) { _ = send(gctx) })
		return
	}
	prev := s.relayed[i]
	done, settle := workflow.NewFuture(ctx)
	s.relayed[i] = done
	workflow.Go(ctx, func(gctx workflow.Context) {
		if prev != nil {
			_ = prev.Get(gctx, nil)
		}
		settle.Set(nil, send(gctx))
	})
}

func (s *sweepRun) run(ctx workflow.Context) (SweepProgress, error) {
	for {
		tooLong := s.runIsLong(ctx)
		for !s.ctl.cancelled && !s.ctl.paused && !tooLong && len(s.running) < s.spec.MaxParallel && s.next < len(s.combos) {
			s.start(ctx, s.next)
			s.next++
		}
		if s.ctl.cancelled {
			for ; s.next < len(s.combos); s.next++ {
				o := s.pendingOutcome(s.next)
				o.Status, o.Reason = sweep.Cancelled, ReasonUnstarted
				s.book.add(s.next, o, s.listAll())
				s.book.unstarted++
			}
		}
		if len(s.running) == 0 && s.next >= len(s.combos) {
			break
		}
		if tooLong && s.childrenOutliveThisRun() {
			return SweepProgress{}, s.continueAsNew(ctx)
		}
		s.watchEarlierChildren(ctx)
		s.waitForEvent(ctx)
	}
	s.finishing = true
	status := "completed"
	if s.ctl.cancelled {
		status = "cancelled"
	}
	s.finishTracking(ctx, status)
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(status))
	s.trimLedger()
	return s.progress(), nil
}

// runIsLong says whether this run's history is long enough to continue as new.
func (s *sweepRun) runIsLong(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested() || s.finishedThisRun >= s.spec.ContinueAsNewAfter
}

// childrenOutliveThisRun says whether every running child outlives this
// run (a child started before that change would be cancelled by it).
func (s *sweepRun) childrenOutliveThisRun() bool {
	for _, i := range s.running {
		if s.children[i] != nil && !s.detached[i] {
			return false
		}
	}
	return true
}

// waitForEvent blocks until something the main loop acts on happened. A
// cancelled sweep still waits for its children to end.
func (s *sweepRun) waitForEvent(ctx workflow.Context) {
	seen := s.events
	wctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(wctx, func() bool { return s.events != seen })
}

// start runs combination i as a child workflow.
func (s *sweepRun) start(ctx workflow.Context, i int) {
	c := s.combos[i]
	// Children checkpoint and stop if the sweep is cancelled (and, before
	// children outlived runs, terminated); a later sweep resumes them from
	// the store.
	closePolicy := enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL
	if since(ctx, changeContinueWithChildren) {
		closePolicy = enumspb.PARENT_CLOSE_POLICY_ABANDON
		s.detached[i] = true
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        ChildID(s.id, c.ID()),
		ParentClosePolicy: closePolicy,
		StaticSummary:     fmt.Sprintf("%s in sweep %s", c.ID(), s.spec.Name),
		// A cancelled sweep ends after its children have, so it can be
		// started again at once under the same IDs.
		WaitForCancellation: since(ctx, changeWaitForChildren),
	})
	o := s.pendingOutcome(i)
	o.Status = sweep.Running
	s.live[i] = o
	s.running = append(s.running, i)
	f := workflow.ExecuteChildWorkflow(cctx, Combination, CombinationInput{Spec: s.spec, Combination: c, Paused: s.ctl.paused})
	s.children[i] = f
	workflow.Go(ctx, func(gctx workflow.Context) {
		var o sweep.Outcome
		err := f.Get(gctx, &o)
		if err == nil {
			o.Summarise()
			s.ended(i, o)
			return
		}
		o = s.live[i]
		o.Status, o.Reason = sweep.Failed, errorMessage(err)
		if temporal.IsCanceledError(err) {
			o.Status = sweep.Cancelled
		}
		if s.reconcile {
			// Ended from outside or by a failure before it recorded: the
			// sweep records how it ended.
			o.Status = closeStatus(err)
			s.recordForChild(gctx, i, o)
		}
		o.Summarise()
		s.ended(i, o)
	})
}

// ended takes in a child's final outcome.
func (s *sweepRun) ended(i int, o sweep.Outcome) {
	k := slices.Index(s.running, i)
	if k < 0 {
		s.book.replace(i, o)
		return
	}
	s.book.add(i, o, s.listAll())
	delete(s.live, i)
	s.running = slices.Delete(s.running, k, k+1)
	delete(s.children, i)
	delete(s.detached, i)
	delete(s.relayed, i)
	s.finishedThisRun++
	s.events++
}

// continueAsNew hands the state to a fresh run once the signals already
// received are applied. Running children carry on: the next run follows
// them by their signals.
func (s *sweepRun) continueAsNew(ctx workflow.Context) error {
	s.ctl.drain(ctx)
	for s.reconcile && !(s.relaysSettled() && s.childrenStarted()) {
		// A command relayed but not yet delivered would be lost with
		// this run, and a child whose start is still in flight would
		// never start: let both settle, then take what came meanwhile.
		wctx, _ := workflow.NewDisconnectedContext(ctx)
		_ = workflow.Await(wctx, func() bool { return s.relaysSettled() && s.childrenStarted() })
		s.ctl.drain(ctx)
	}
	progress := workflow.GetSignalChannel(ctx, SignalProgress)
	var o sweep.Outcome
	for progress.ReceiveAsync(&o) {
		s.takeProgress(o)
	}
	s.trimLedger()
	carry := &SweepCarry{Next: s.next, Paused: s.ctl.paused, Cancelled: s.ctl.cancelled, Runs: s.runs + 1, Began: s.began,
		Running: s.running, Ledger: s.book.carry(), Growth: s.growth}
	for _, i := range s.running {
		carry.Live = append(carry.Live, s.live[i])
	}
	if s.legacyCombos {
		carry.Combos = s.combos
	}
	return workflow.NewContinueAsNewError(ctx, Sweep, SweepInput{Spec: s.spec, Carry: carry})
}

// relaysSettled: every control command relayed to a child was delivered
// (or failed to be: the child had closed).
func (s *sweepRun) relaysSettled() bool {
	for _, f := range s.relayed {
		if !f.IsReady() {
			return false
		}
	}
	return true
}

// childrenStarted: every child this run started has started (or failed
// to): one still starting when the run continues as new is never started.
func (s *sweepRun) childrenStarted() bool {
	for _, f := range s.children {
		if !f.GetChildWorkflowExecution().IsReady() {
			return false
		}
	}
	return true
}

// reconcileEvery is how often a sweep asks the server how the children
// started by its earlier runs stand: they report by signal, and one that
// closed without a last signal (terminated, timed out, failed before
// recording) would otherwise be waited for forever.
const reconcileEvery = time.Minute

// watchEarlierChildren starts a look, after reconcileEvery, at the
// children of earlier runs still counted as running, unless one is under
// way; what it finds ends those children and wakes the main loop.
func (s *sweepRun) watchEarlierChildren(ctx workflow.Context) {
	if !s.reconcile || s.reconciling || len(s.earlierChildren()) == 0 {
		return
	}
	s.reconciling = true
	// Disconnected: a cancelled sweep still waits for its children.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		defer func() { s.reconciling = false; s.events++ }()
		if err := workflow.Sleep(gctx, reconcileEvery); err != nil {
			return
		}
		ids := map[string]int{}
		var in ChildrenInput
		for _, i := range s.earlierChildren() {
			id := ChildID(s.id, s.combos[i].ID())
			ids[id] = i
			in.IDs = append(in.IDs, id)
		}
		if len(in.IDs) == 0 {
			return // they all reported meanwhile
		}
		var out ChildrenOutput
		actx := workflow.WithActivityOptions(gctx, shortOptions())
		if err := workflow.ExecuteActivity(actx, ActivityDescribeChildren, in).Get(gctx, &out); err != nil {
			workflow.GetLogger(ctx).Warn("could not ask how earlier children stand; asking again later", "err", err)
			return
		}
		for _, c := range out.Closed {
			i, ok := ids[c.ID]
			if !ok || !slices.Contains(s.running, i) {
				continue // its last signal came meanwhile
			}
			o := s.live[i]
			if c.Result != nil {
				o = *c.Result
			} else {
				o.Status, o.Reason = c.Status, c.Reason
				s.recordForChild(gctx, i, o)
			}
			o.Summarise()
			s.ended(i, o)
		}
	})
}

// earlierChildren are the running children started by an earlier run of
// the sweep (this run holds no future of theirs).
func (s *sweepRun) earlierChildren() []int {
	var out []int
	for _, i := range s.running {
		if s.children[i] == nil {
			out = append(out, i)
		}
	}
	return out
}

// recordForChild records the outcome of child i, which closed without
// recording one, and releases its claim on the config.
func (s *sweepRun) recordForChild(ctx workflow.Context, i int, o sweep.Outcome) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(dctx, shortOptions())
	in := RecordInput{Sweep: s.spec.Name, Outcome: o, Owner: ChildID(s.id, s.combos[i].ID())}
	if err := workflow.ExecuteActivity(actx, ActivityRecordResult, in).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("could not record how a child ended", "combination", o.ID(), "err", err)
	}
}

// closeStatus is the status of a child workflow that closed with err.
func closeStatus(err error) sweep.Status {
	var terminated *temporal.TerminatedError
	var timeout *temporal.TimeoutError
	switch {
	case temporal.IsCanceledError(err):
		return sweep.Cancelled
	case errors.As(err, &terminated):
		return sweep.Terminated
	case errors.As(err, &timeout):
		return sweep.TimedOut
	}
	return sweep.Failed
}
