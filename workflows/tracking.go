package workflows

import (
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// Tracking to MLflow is durable work of its own: a combination's tracker
// runs TrackTraining beside the training, never in its way (a server that
// is down or slow costs the training nothing), and the sweep, once every
// training has ended, brings any run that fell behind up to date and
// finishes its own run (TrackSweep).
const (
	// trackingGrace is how long an ended combination waits for its run to
	// be complete before it leaves the rest to its sweep (which catches up
	// at its end): short, as the combination holds a training slot.
	trackingGrace = 10 * time.Second
	// trackSyncTime bounds one sync with its retries: a server down longer
	// leaves the run behind until the next epoch's sync.
	trackSyncTime = 2 * time.Minute
)

// trackOptions are TrackTraining's and FindTracked's: retried while the
// server may come back, within trackSyncTime; a refusal no retry mends
// (ErrTypeTracking) is not retried.
func trackOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    trackSyncTime,
		ScheduleToCloseTimeout: trackSyncTime,
		RetryPolicy:            retryBase(0, 20*time.Second, ErrTypeTracking),
		Summary:                summary,
	}
}

// trackSweepOptions are TrackSweep's: a sweep whose trainings have ended
// waits for the tracking server to come back (for days), retrying every
// few minutes at most.
func trackSweepOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Minute,
		ScheduleToCloseTimeout: 7 * 24 * time.Hour,
		RetryPolicy:            retryBase(0, 5*time.Minute, ErrTypeTracking),
		Summary:                summary,
	}
}

// tracker keeps one combination's MLflow run up to date: each call of
// want asks for a sync, and one TrackTraining at a time brings the run to
// the state of the latest ask (syncs are idempotent, so asks made while
// one runs are served by the next).
type tracker struct {
	c       *combination
	asked   int  // syncs asked for
	tried   int  // the ask the last finished sync served
	running bool // a sync is under way
	synced  bool // the last finished sync succeeded
}

// startTracker starts the combination's tracker when the sweep tracks
// (nil otherwise: every method of a nil tracker does nothing).
func startTracker(ctx workflow.Context, c *combination) *tracker {
	if !c.spec.Tracking.On() || !since(ctx, changeTracking) {
		return nil
	}
	t := &tracker{c: c}
	// Disconnected: a cancelled combination's run is marked KILLED too.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, t.loop)
	return t
}

func (t *tracker) want() {
	if t != nil {
		t.asked++
	}
}

func (t *tracker) loop(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, trackOptions("track "+t.c.out.ID()))
	for {
		if err := workflow.Await(ctx, func() bool { return t.asked > t.tried }); err != nil {
			return
		}
		serving := t.asked
		t.running = true
		var out TrackOutput
		err := workflow.ExecuteActivity(actx, ActivityTrackTraining, t.c.trackInput(ctx)).Get(ctx, &out)
		t.running, t.tried, t.synced = false, serving, err == nil
		if err != nil {
			t.c.out.Tracking = "behind: " + trackingMessage(err)
			workflow.GetLogger(ctx).Warn("tracking behind", "combination", t.c.out.ID(), "err", err)
			continue
		}
		t.c.out.TrackingRun, t.c.out.TrackingURL, t.c.out.Tracking = out.RunID, out.URL, ""
	}
}

// finish asks for the final sync and waits up to trackingGrace for it;
// a run still behind is left to the sweep (the outcome says so).
func (t *tracker) finish(ctx workflow.Context) {
	if t == nil || t.c.prep.ConfigHash == "" { // ended before it was prepared: no run
		return
	}
	t.want()
	asked := t.asked
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	ok, _ := workflow.AwaitWithTimeout(dctx, trackingGrace, func() bool { return t.tried >= asked && !t.running })
	if !ok || !t.synced {
		if t.c.out.Tracking == "" {
			t.c.out.Tracking = "behind: the tracking server did not answer in time"
		}
	}
}

// trackInput is what TrackTraining needs, as the workflow stands now.
func (c *combination) trackInput(ctx workflow.Context) TrackInput {
	info := workflow.GetInfo(ctx)
	in := TrackInput{Sweep: c.spec.Name, WorkflowID: info.WorkflowExecution.ID, Tracking: c.spec.Tracking,
		Prepared: c.prep, Outcome: c.out, Started: c.started}
	if p := info.ParentWorkflowExecution; p != nil {
		in.SweepID = p.ID
	} else {
		in.SweepID = SweepID(c.spec.Name)
	}
	return in
}

// skipIfTracked ends a combination whose config has a FINISHED run on the
// tracking server (tracking.skip_completed), adopting its figures. A
// server that cannot answer skips nothing: the training runs.
func (c *combination) skipIfTracked(ctx workflow.Context) *ending {
	if !c.spec.Tracking.On() || !c.spec.Tracking.SkipCompleted || !since(ctx, changeTracking) {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, trackOptions("is "+c.out.ID()+" tracked as finished?"))
	var found LookupOutput
	err := workflow.ExecuteActivity(actx, ActivityFindTracked, FindTrackedInput{Tracking: c.spec.Tracking, Sweep: c.spec.Name,
		ConfigHash: c.prep.ConfigHash}).Get(ctx, &found)
	if err != nil {
		workflow.GetLogger(ctx).Warn("tracking server not asked whether the training is done: training it", "combination", c.out.ID(), "err", err)
		c.out.Tracking = "behind: " + trackingMessage(err)
		return nil
	}
	if !found.Found {
		return nil
	}
	prev := found.Outcome
	c.out.Progress, c.out.TrackingRun = prev.Progress, prev.TrackingRun
	c.out.SkippedFrom = found.Key
	c.out.Summarise()
	return &ending{sweep.Skipped, "already completed: tracking server has it (" + found.Key + ")"}
}

// finishTracking finishes the sweep's MLflow run once every training has
// ended: runs that fell behind are synced first. A completed sweep waits
// while the server is down (its trainings are over; `starter status` says
// it is catching up); a cancelled one waits trackSyncTime at most. A
// refusal no retry mends ends it with the reason in the sweep's progress.
func (s *sweepRun) finishTracking(ctx workflow.Context, status string) {
	if !s.spec.Tracking.On() || !since(ctx, changeTracking) {
		return
	}
	behind := len(s.book.behind) + s.book.behindMore
	s.tracking = "finishing the sweep's run"
	if behind > 0 {
		s.tracking = "catching up: " + strconv.Itoa(behind) + " runs behind"
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx) // a cancelled sweep's run is marked KILLED too
	opts := trackSweepOptions("track sweep " + s.spec.Name)
	if status == "cancelled" || !s.trackingReached() {
		// A cancelled sweep is started again at once under its ID, and a
		// server no sync ever reached is a wrong URI more likely than an
		// outage: neither waits longer than one sync.
		opts = trackOptions("track sweep " + s.spec.Name)
	}
	actx := workflow.WithActivityOptions(dctx, opts)
	in := TrackSweepInput{Spec: s.spec, SweepID: s.id, Outcomes: s.book.behind, FromStore: s.book.behindMore > 0, Status: status,
		Started: workflow.GetInfo(ctx).WorkflowStartTime, Ended: workflow.Now(ctx)}
	var out TrackOutput
	if err := workflow.ExecuteActivity(actx, ActivityTrackSweep, in).Get(dctx, &out); err != nil {
		s.tracking = "behind: " + trackingMessage(err)
		workflow.GetLogger(ctx).Warn("sweep's tracking not finished", "err", err)
		return
	}
	s.tracking = ""
	s.book.caughtUp()
}

// trackingReached says whether any training's sync reached the tracking
// server (its outcome names its run).
func (s *sweepRun) trackingReached() bool { return s.book.reached }

// trackingMessage is one line on why tracking failed: the activity's own
// message, without the chain of causes an ApplicationError repeats.
func trackingMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return errorMessage(err)
}
