package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// Activity options, in one place. Every retry policy starts from retryBase:
// exponential back-off from a second, bad input never retried.
func retryBase(maxAttempts int, maxInterval time.Duration, nonRetryable ...string) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: maxInterval,
		MaximumAttempts:        int32(maxAttempts),
		NonRetryableErrorTypes: append([]string{ErrTypeInvalidInput}, nonRetryable...),
	}
}

// shortOptions are for bookkeeping activities (prepare, lookup, claim,
// resume point, record): minutes at most, retried for a while.
func shortOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Minute, RetryPolicy: retryBase(10, time.Minute)}
}

// prepareOptions are Prepare's: it may digest a large data folder or
// download weights, so liveness comes from heartbeats (a stalled download
// is given up within them, and a pause or cancel reaches it).
func prepareOptions(spec sweep.Spec) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		// Bounded still: a data folder that hangs mid-digest reports no
		// I/O wait, so only this ends its attempt (it was 10 minutes).
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    time.Duration(spec.Activity.HeartbeatTimeoutSeconds) * time.Second,
		// A stopped Prepare reports back before the next one starts: never
		// two downloads of one config at once after a quick pause/resume.
		WaitForCancellation: true,
		RetryPolicy:         retryBase(10, time.Minute),
	}
}

// epochOptions are a TrainEpoch's. An epoch may take hours: liveness comes
// from heartbeats, not from its start-to-close timeout. On queue (a
// worker's own, "" for the workflow's) it gets one attempt: a worker that
// dies or freezes there costs its heartbeat timeout, then any worker
// retries the epoch.
func epochOptions(spec sweep.Spec, summary, queue string) workflow.ActivityOptions {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 7 * 24 * time.Hour,
		HeartbeatTimeout:    time.Duration(spec.Activity.HeartbeatTimeoutSeconds) * time.Second,
		WaitForCancellation: true,
		RetryPolicy: retryBase(spec.Activity.MaxAttempts, 30*time.Second,
			ErrTypeOutOfMemory, ErrTypeWorkerBusy),
		Summary: summary,
	}
	if queue != "" {
		opts.TaskQueue = queue
		opts.ScheduleToStartTimeout = time.Duration(spec.Activity.StickySeconds) * time.Second
		opts.RetryPolicy.MaximumAttempts = 1
	}
	return opts
}

// evaluateOptions are EvaluateAtResolutions': heartbeated like an epoch.
func evaluateOptions(spec sweep.Spec, summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    time.Duration(spec.Activity.HeartbeatTimeoutSeconds) * time.Second,
		RetryPolicy:         retryBase(spec.Activity.MaxAttempts, time.Minute),
		Summary:             summary,
	}
}

func epochSummary(id string, epoch, of int) string {
	return fmt.Sprintf("%s epoch %d/%d", id, epoch, of)
}
