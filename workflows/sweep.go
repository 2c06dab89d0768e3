package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// sweepState is the Sweep workflow's state.
type sweepState struct {
	spec      sweep.Spec
	combos    []sweep.Combination
	outcomes  []results.Outcome
	next      int   // index of the next combination to start
	running   []int // indices of running children, in start order
	paused    bool
	cancelled bool
	runs      int
}

func (s *sweepState) progress() SweepProgress {
	return SweepProgress{Name: s.spec.Name, Paused: s.paused, Cancelled: s.cancelled, Runs: s.runs,
		Done: s.next >= len(s.combos) && len(s.running) == 0, Combos: append([]results.Outcome(nil), s.outcomes...)}
}

func (s *sweepState) find(model string, res int) int {
	for i, c := range s.combos {
		if c.Model == model && c.Resolution == res {
			return i
		}
	}
	return -1
}

func (s *sweepState) remove(i int) {
	for k, r := range s.running {
		if r == i {
			s.running = append(s.running[:k], s.running[k+1:]...)
			return
		}
	}
}

// Sweep runs every combination of a spec as a child workflow, at most
// MaxParallel at a time. A failing combination never stops the others; the
// result lists every combination's outcome.
func Sweep(ctx workflow.Context, in SweepInput) (SweepProgress, error) {
	spec := in.Spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return SweepProgress{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	s := &sweepState{spec: spec, combos: spec.Combinations()}
	if in.Carry != nil {
		s.outcomes, s.next, s.paused, s.cancelled, s.runs = in.Carry.Outcomes, in.Carry.Next, in.Carry.Paused, in.Carry.Cancelled, in.Carry.Runs
	} else {
		for _, c := range s.combos {
			info, _ := trainer.LookupModel(c.Model)
			s.outcomes = append(s.outcomes, results.Outcome{Model: c.Model, Family: info.Family, Resolution: c.Resolution,
				Epochs: spec.Epochs, Status: results.Pending})
		}
	}
	sweepID := workflow.GetInfo(ctx).WorkflowExecution.ID
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (SweepProgress, error) { return s.progress(), nil }); err != nil {
		return SweepProgress{}, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrSweep.ValueSet(spec.Name), AttrStatus.ValueSet("running"))

	// forward relays a control signal to every running child, in start order.
	children := map[int]workflow.ChildWorkflowFuture{} // by combination index
	forward := func(name string) {
		v := workflow.GetVersion(ctx, changeSignalOnceStarted, workflow.DefaultVersion, 1)
		for _, i := range s.running {
			if v == workflow.DefaultVersion {
				_ = workflow.SignalExternalWorkflow(ctx, childID(sweepID, s.combos[i]), "", name, nil)
				continue
			}
			// A child whose start is still in flight would miss a signal sent
			// now (and run on while the sweep says paused); SignalChildWorkflow
			// waits for the start. Coroutines run in creation order, so
			// pause-then-resume arrives in that order.
			f := children[i]
			workflow.Go(ctx, func(gctx workflow.Context) {
				_ = f.SignalChildWorkflow(gctx, name, nil).Get(gctx, nil)
			})
		}
	}
	control := func(name string) {
		switch name {
		case SignalPause:
			s.paused = true
		case SignalResume:
			s.paused = false
		case SignalCancel:
			s.cancelled = true
		}
		for _, i := range s.running {
			switch {
			case name == SignalPause:
				s.outcomes[i].Status = results.Paused
			case name == SignalResume:
				s.outcomes[i].Status = results.Running
			}
		}
		forward(name)
	}
	for _, u := range []struct {
		name, signal string
		valid        func() error
	}{
		{UpdatePause, SignalPause, func() error {
			if s.paused {
				return fmt.Errorf("sweep %s is already paused", spec.Name)
			}
			return nil
		}},
		{UpdateResume, SignalResume, func() error {
			if !s.paused {
				return fmt.Errorf("sweep %s is not paused", spec.Name)
			}
			return nil
		}},
		{UpdateCancel, SignalCancel, func() error {
			if s.cancelled {
				return fmt.Errorf("sweep %s is already cancelled", spec.Name)
			}
			return nil
		}},
	} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, func(ctx workflow.Context) (SweepProgress, error) {
			control(u.signal)
			return s.progress(), nil
		}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return u.valid() }})
		if err != nil {
			return SweepProgress{}, err
		}
	}

	sel := workflow.NewSelector(ctx)
	for _, name := range []string{SignalPause, SignalResume, SignalCancel} {
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			control(name)
		})
	}
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalProgress), func(ch workflow.ReceiveChannel, _ bool) {
		var o results.Outcome
		ch.Receive(ctx, &o)
		if i := s.find(o.Model, o.Resolution); i >= 0 && !s.outcomes[i].Status.Done() {
			s.outcomes[i] = o
		}
	})

	// A cancelled workflow (temporal workflow cancel) counts as a cancel
	// signal; its children are cancelled with it and checkpoint first.
	wfCancelled := workflow.NewBufferedChannel(ctx, 1)
	workflow.Go(ctx, func(gctx workflow.Context) {
		gctx.Done().Receive(gctx, nil)
		wfCancelled.SendAsync(true)
	})
	sel.AddReceive(wfCancelled, func(ch workflow.ReceiveChannel, _ bool) {
		ch.ReceiveAsync(nil)
		s.cancelled = true
	})

	// Each finished child adds a handful of events to this history; after
	// ContinueAsNewAfter of them the sweep continues as new.
	finishedThisRun := 0
	start := func(i int) {
		c := s.combos[i]
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: childID(sweepID, c),
			// Children checkpoint and stop if the sweep is cancelled or
			// terminated; a later sweep resumes them from the store.
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
			StaticSummary:     fmt.Sprintf("%s in sweep %s", c.ID(), spec.Name),
		})
		s.outcomes[i].Status = results.Running
		s.running = append(s.running, i)
		f := workflow.ExecuteChildWorkflow(cctx, Combination, CombinationInput{Spec: spec, Combination: c, Paused: s.paused})
		children[i] = f
		sel.AddFuture(f, func(f workflow.Future) {
			var o results.Outcome
			if err := f.Get(ctx, &o); err != nil {
				o = s.outcomes[i]
				o.Status, o.Reason = results.Failed, errorMessage(err)
				if temporal.IsCanceledError(err) {
					o.Status = results.Cancelled
				}
			}
			s.outcomes[i] = o
			s.remove(i)
			delete(children, i)
			finishedThisRun++
		})
	}

	for {
		tooLong := workflow.GetInfo(ctx).GetContinueAsNewSuggested() || finishedThisRun >= spec.ContinueAsNewAfter
		for !s.cancelled && !s.paused && !tooLong && len(s.running) < spec.MaxParallel && s.next < len(s.combos) {
			start(s.next)
			s.next++
		}
		if s.cancelled {
			for ; s.next < len(s.combos); s.next++ {
				s.outcomes[s.next].Status, s.outcomes[s.next].Reason = results.Cancelled, "sweep cancelled before it started"
			}
		}
		if len(s.running) == 0 && s.next >= len(s.combos) {
			break
		}
		if len(s.running) == 0 && tooLong {
			// Nothing runs now, so nothing is lost: drain pending signals
			// and hand the state to a fresh run.
			for sel.HasPending() {
				sel.Select(ctx)
			}
			return SweepProgress{}, workflow.NewContinueAsNewError(ctx, Sweep, SweepInput{Spec: spec, Carry: &SweepCarry{
				Outcomes: s.outcomes, Next: s.next, Paused: s.paused, Cancelled: s.cancelled, Runs: s.runs + 1,
			}})
		}
		sel.Select(ctx)
	}
	status := "completed"
	if s.cancelled {
		status = "cancelled"
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(status))
	return s.progress(), nil
}
