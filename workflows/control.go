package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// control is the pause/resume/cancel state of a Sweep or a Combination, and
// the one place its rules live: a command that makes no sense (pausing what
// is paused, resuming what runs, cancelling twice, anything once finished)
// is refused when it comes as an update and ignored when it comes as a
// signal. The same command has the same effect either way.
type control struct {
	what      string // "sweep default", "smallcnn@32": for messages
	paused    bool
	cancelled bool
	finished  func() bool
	// changed applies a command's effects once it took effect.
	changed func(ctx workflow.Context, cmd string)
	// answer is what an update returns.
	answer func() any
}

// check says why cmd would make no sense now (nil if it makes sense).
func (c *control) check(cmd string) error {
	if c.finished() {
		return fmt.Errorf("%s has finished: nothing to %s", c.what, cmd)
	}
	switch {
	case cmd == SignalPause && c.paused:
		return fmt.Errorf("%s is already paused", c.what)
	case cmd == SignalResume && !c.paused:
		return fmt.Errorf("%s is not paused", c.what)
	case cmd == SignalCancel && c.cancelled:
		return fmt.Errorf("%s is already cancelled", c.what)
	}
	return nil
}

// apply carries out cmd if it makes sense.
func (c *control) apply(ctx workflow.Context, cmd string) {
	if c.check(cmd) != nil {
		return
	}
	switch cmd {
	case SignalPause:
		c.paused = true
	case SignalResume:
		c.paused = false
	case SignalCancel:
		c.cancelled = true
	}
	c.changed(ctx, cmd)
}

// commands are the control commands, each with its update's name.
var commands = []struct{ signal, update string }{
	{SignalPause, UpdatePause}, {SignalResume, UpdateResume}, {SignalCancel, UpdateCancel},
}

// listen routes control signals and updates to apply, in arrival order.
func (c *control) listen(ctx workflow.Context) error {
	for _, cmd := range commands {
		err := workflow.SetUpdateHandlerWithOptions(ctx, cmd.update, func(ctx workflow.Context) (any, error) {
			c.apply(ctx, cmd.signal)
			return c.answer(), nil
		}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return c.check(cmd.signal) }})
		if err != nil {
			return err
		}
	}
	sel := workflow.NewSelector(ctx)
	for _, cmd := range commands {
		sel.AddReceive(workflow.GetSignalChannel(ctx, cmd.signal), func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			c.apply(ctx, cmd.signal)
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

// drain applies the signals already received, before a continue-as-new.
func (c *control) drain(ctx workflow.Context) {
	for _, cmd := range commands {
		ch := workflow.GetSignalChannel(ctx, cmd.signal)
		for ch.ReceiveAsync(nil) {
			c.apply(ctx, cmd.signal)
		}
	}
}
