package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// heartbeater heartbeats a TrainEpoch attempt through every phase (a cache
// build, a download or a validation can outlast the heartbeat timeout):
// the phase, the steps done and the key of its latest stored checkpoint,
// from which a retry continues.
type heartbeater struct {
	ctx  context.Context // the activity's
	done chan struct{}

	mu sync.Mutex
	hb workflows.Heartbeat
}

func newHeartbeater(ctx context.Context) *heartbeater {
	h := &heartbeater{ctx: ctx, done: make(chan struct{})}
	every := time.Second
	if t := activity.GetInfo(ctx).HeartbeatTimeout; t > 0 {
		every = min(max(t/4, 100*time.Millisecond), 10*time.Second)
	}
	go h.run(every)
	return h
}

// run heartbeats the current phase until stop: whatever the attempt is
// doing, the server hears of it.
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
			h.beat()
		}
	}
}

func (h *heartbeater) stop() { close(h.done) }

func (h *heartbeater) beat() { activity.RecordHeartbeat(h.ctx, h.details()) }

func (h *heartbeater) setPhase(phase string) {
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
	return h.hb
}

// stored heartbeats the key of a checkpoint just committed.
func (h *heartbeater) stored(key string, rec checkpoint.Record) {
	h.mu.Lock()
	h.hb.Key, h.hb.Done = key, rec.StepInEpoch
	if rec.Kind == checkpoint.KindEpoch {
		h.hb.Done = 0
	}
	h.mu.Unlock()
	h.beat()
}

func (h *heartbeater) progress(p trainer.StepProgress) {
	h.mu.Lock()
	h.hb.Done, h.hb.Of = p.Step, p.StepsPerEpoch
	h.mu.Unlock()
	h.beat()
}
