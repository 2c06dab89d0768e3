package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/workflows"
)

// heartbeater heartbeats an attempt through every phase (a cache build, a
// download or a validation can outlast the heartbeat timeout): the phase,
// the steps done and the key of its latest stored checkpoint, from which a
// retry continues.
//
// Heartbeats prove progress, not only that the process lives: the
// heartbeater's engine.StallWatch watches the attempt's I/O (store calls
// and transfers tell it that they wait and that they advance; a cache
// build reports images made). When the attempt waits on I/O and nothing advanced
// for a heartbeat timeout, the store or the data folder hangs: it
// heartbeats once more saying so, then stops, so the server gives the
// attempt up (within about twice the heartbeat timeout) and retries it,
// and it stops the training (onStall).
type heartbeater struct {
	ctx        context.Context // the activity's
	done       chan struct{}
	stallAfter time.Duration // 0: no heartbeat timeout, no stall watch

	watch *engine.StallWatch

	mu      sync.Mutex
	hb      workflows.Heartbeat
	onStall func(error)
}

// errStalled: the attempt waited on I/O without progress for a heartbeat
// timeout.
var errStalled = errors.New("no progress")

func newHeartbeater(ctx context.Context) *heartbeater {
	h := &heartbeater{ctx: ctx, done: make(chan struct{}), watch: engine.NewStallWatch()}
	every := time.Second
	if t := activity.GetInfo(ctx).HeartbeatTimeout; t > 0 {
		every = min(max(t/4, 100*time.Millisecond), 10*time.Second)
		h.stallAfter = t
	}
	go h.run(every)
	return h
}

// watching is ctx with h watching its I/O.
func (h *heartbeater) watching(ctx context.Context) context.Context { return h.watch.Watching(ctx) }

// run heartbeats the current phase until stop, or until the attempt stalls.
func (h *heartbeater) run(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-h.ctx.Done():
			return
		case <-t.C:
			if h.checkStall() {
				return
			}
			h.beat()
		}
	}
}

// checkStall says whether the attempt has stalled; the first time, it
// heartbeats why (starter status and the Web UI show it) and stops the
// training.
func (h *heartbeater) checkStall() bool {
	idle := h.watch.Idle()
	if h.stallAfter == 0 || idle < h.stallAfter { // idle is 0 when no I/O waits
		return false
	}
	h.mu.Lock()
	stalled := fmt.Errorf("%w for %v while %s (the store, the data folder or a download hangs): attempt given up",
		errStalled, idle.Round(time.Second), h.hb.Phase)
	h.hb.Phase = workflows.PhaseStalled + stalled.Error()
	onStall := h.onStall
	h.mu.Unlock()
	activity.GetLogger(h.ctx).Warn("attempt stalled: no more heartbeats", "err", stalled)
	h.beat()
	if onStall != nil {
		onStall(stalled)
	}
	return true
}

// stopOnStall has stop called with the reason if the attempt stalls.
func (h *heartbeater) stopOnStall(stop func(error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onStall = stop
}

// cancelOnStall is ctx, cancelled if the attempt stalls meanwhile; done
// ends that and says what err means: the stall's reason when the stall
// is what ended the work, err otherwise.
func (h *heartbeater) cancelOnStall(ctx context.Context) (_ context.Context, done func(err error) error) {
	sctx, cancel := context.WithCancelCause(ctx)
	h.stopOnStall(cancel)
	return sctx, func(err error) error {
		h.stopOnStall(nil)
		defer cancel(nil)
		if cause := context.Cause(sctx); err != nil && errors.Is(cause, errStalled) {
			return cause // retried
		}
		return err
	}
}

func (h *heartbeater) stop() { close(h.done) }

func (h *heartbeater) beat() { activity.RecordHeartbeat(h.ctx, h.details()) }

func (h *heartbeater) setPhase(phase string) {
	h.watch.Phase(phase)
	h.mu.Lock()
	h.hb.Phase = phase
	h.mu.Unlock()
	h.beat()
}

func (h *heartbeater) lastKey() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hb.Key
}

// details are what the attempt heartbeats now.
func (h *heartbeater) details() workflows.Heartbeat {
	h.mu.Lock()
	defer h.mu.Unlock()
	hb := h.hb
	hb.At = time.Now()
	return hb
}

// stored heartbeats the key of a checkpoint just committed.
func (h *heartbeater) stored(key string, rec checkpoint.Record) {
	h.mu.Lock()
	h.hb.Key, h.hb.Done = key, rec.StepInEpoch
	if rec.Kind == checkpoint.KindEpoch {
		h.hb.Done = 0
	}
	h.mu.Unlock()
	h.watch.Advance()
	h.beat()
}

func (h *heartbeater) progress(p engine.StepProgress) {
	h.mu.Lock()
	h.hb.Done, h.hb.Of = p.Step, p.StepsPerEpoch
	h.mu.Unlock()
	h.watch.Advance()
	h.beat()
}
