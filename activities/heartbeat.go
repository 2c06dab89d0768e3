package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// heartbeater heartbeats a TrainEpoch attempt through every phase (a cache
// build, a download or a validation can outlast the heartbeat timeout) and
// stores its checkpoints, but only while the attempt is still the current
// one: an attempt the server gave up on (frozen, cut off) writes nothing
// more, so a retry never resumes from a zombie's work.
type heartbeater struct {
	ctx  context.Context // the activity's
	a    *Activities
	repo checkpoint.Repo
	done chan struct{}

	mu sync.Mutex
	hb workflows.Heartbeat
}

func newHeartbeater(ctx context.Context, a *Activities, repo checkpoint.Repo) *heartbeater {
	h := &heartbeater{ctx: ctx, a: a, repo: repo, done: make(chan struct{})}
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

func (h *heartbeater) beat() {
	h.mu.Lock()
	hb := h.hb
	h.mu.Unlock()
	activity.RecordHeartbeat(h.ctx, hb)
}

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

func (h *heartbeater) progress(p trainer.StepProgress) {
	h.mu.Lock()
	h.hb.Done, h.hb.Of = p.Step, p.StepsPerEpoch
	h.mu.Unlock()
	h.beat()
}

// checkpoint stores c if this attempt is still the current one, then
// heartbeats its key and applies retention (in the background: it is
// housekeeping). Mid-epoch checkpoints come here while training goes on.
func (h *heartbeater) checkpoint(ctx context.Context, c *checkpoint.Checkpoint) error {
	if err := h.confirmCurrent(ctx); err != nil {
		return err
	}
	key, err := h.repo.Save(ctx, c)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.hb.Key, h.hb.Done = key, c.Record.StepInEpoch
	if c.Record.Kind == checkpoint.KindEpoch {
		h.hb.Done = 0
	}
	h.mu.Unlock()
	h.beat()
	h.a.pruneAfter(h.repo, c.Record, key)
	return nil
}

// storeFiles stores an epoch checkpoint's tensor files ahead of its record
// (while validation runs), if this attempt is still the current one.
func (h *heartbeater) storeFiles(ctx context.Context, c *checkpoint.Checkpoint) error {
	if err := h.confirmCurrent(ctx); err != nil {
		return err
	}
	return h.repo.SaveFiles(ctx, c)
}

// errSuperseded: the server gave this attempt up; another one carries on.
var errSuperseded = errors.New("attempt superseded")

// confirmCurrent says whether this attempt may still store checkpoints. A
// cancel the workflow asked for (a pause, a cancel) still checkpoints; an
// attempt whose heartbeats were refused (timed out, gone) does not. With a
// Temporal client it asks the server first, synchronously: a worker that
// was frozen past its heartbeat timeout learns it before it writes.
func (h *heartbeater) confirmCurrent(ctx context.Context) error {
	if err := h.ctx.Err(); err != nil {
		if cause := context.Cause(h.ctx); !isCancelRequest(cause) {
			return fmt.Errorf("%w (%v): its work is not stored", errSuperseded, cause)
		}
		return nil
	}
	if h.a.Temporal == nil {
		return nil
	}
	h.mu.Lock()
	hb := h.hb
	h.mu.Unlock()
	err := h.a.Temporal.RecordActivityHeartbeat(ctx, activity.GetInfo(h.ctx).TaskToken, hb)
	if err != nil && !isCancelRequest(err) {
		return fmt.Errorf("%w (%v): its work is not stored", errSuperseded, err)
	}
	return nil
}

// isCancelRequest: the workflow asked the activity to stop.
func isCancelRequest(err error) bool {
	var canceled *temporal.CanceledError
	return errors.As(err, &canceled)
}
