package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
)

// attemptStore stores a TrainEpoch attempt's checkpoints, but only while
// the attempt is still the current one: an attempt the server gave up on
// (frozen, cut off) writes nothing more, so a retry never resumes from a
// zombie's work.
type attemptStore struct {
	a    *Activities
	repo checkpoint.Repo
	hb   *heartbeater
}

// checkpoint stores c if this attempt is still the current one, then
// heartbeats its key and applies retention (in the background: it is
// housekeeping). Mid-epoch checkpoints come here while training goes on.
func (s *attemptStore) checkpoint(ctx context.Context, c *checkpoint.Checkpoint) error {
	if err := s.confirmCurrent(ctx); err != nil {
		return err
	}
	key, err := s.repo.Save(ctx, c)
	if err != nil {
		return err
	}
	s.hb.stored(key, c.Record)
	s.a.pruneAfter(s.repo, c.Record, key)
	return nil
}

// storeFiles stores an epoch checkpoint's tensor files ahead of its record
// (while validation runs), if this attempt is still the current one.
func (s *attemptStore) storeFiles(ctx context.Context, c *checkpoint.Checkpoint) error {
	if err := s.confirmCurrent(ctx); err != nil {
		return err
	}
	return s.repo.SaveFiles(ctx, c)
}

// errSuperseded: the server gave this attempt up; another one carries on.
var errSuperseded = errors.New("attempt superseded")

// confirmCurrent says whether this attempt may still store checkpoints. A
// cancel the workflow asked for (a pause, a cancel) still checkpoints; an
// attempt whose heartbeats were refused (timed out, gone) does not. With a
// Temporal client it asks the server first, synchronously: a worker that
// was frozen past its heartbeat timeout learns it before it writes.
func (s *attemptStore) confirmCurrent(ctx context.Context) error {
	attempt := s.hb.ctx
	if err := attempt.Err(); err != nil {
		if cause := context.Cause(attempt); !isCancelRequest(cause) {
			return fmt.Errorf("%w (%v): its work is not stored", errSuperseded, cause)
		}
		return nil
	}
	if s.a.Temporal == nil {
		return nil
	}
	err := s.a.Temporal.RecordActivityHeartbeat(ctx, activity.GetInfo(attempt).TaskToken, s.hb.details())
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
