package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	activitypb "go.temporal.io/api/activity/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/sweepclient"
	"github.com/resomap/resomap/workflows"
)

// starter status says why an epoch does not progress: a stall the attempt
// heartbeated, an attempt silent past its heartbeat timeout (its worker
// lost or stuck), a retry; a healthy attempt has no note.
func TestStatusNamesWhyAnEpochDoesNotProgress(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	pending := func(phase string, beatAgo time.Duration, attempt int32) *workflowpb.PendingActivityInfo {
		details, err := converter.GetDefaultDataConverter().ToPayloads(workflows.Heartbeat{Phase: phase, Done: 3, Of: 10})
		if err != nil {
			t.Fatal(err)
		}
		return &workflowpb.PendingActivityInfo{State: enumspb.PENDING_ACTIVITY_STATE_STARTED, Attempt: attempt,
			HeartbeatDetails: details, LastHeartbeatTime: timestamppb.New(now.Add(-beatAgo)),
			LastStartedTime: timestamppb.New(now.Add(-time.Minute)), LastWorkerIdentity: "123@box",
			ActivityOptions: &activitypb.ActivityOptions{HeartbeatTimeout: durationpb.New(10 * time.Second)}}
	}
	if n := pendingEpoch(pending("training", 2*time.Second, 1), now).note(); n != "" {
		t.Errorf("a healthy epoch: note %q", n)
	}
	stalled := workflows.PhaseStalled + "no progress for 11s while saving checkpoint (the store or the data folder hangs): attempt given up"
	if n := pendingEpoch(pending(stalled, 12*time.Second, 1), now).note(); !strings.Contains(n, stalled) ||
		!strings.Contains(n, "no heartbeat for 12s (timeout 10s): worker 123@box lost or stuck") {
		t.Errorf("a stalled, silent epoch: note %q", n)
	}
	retried := pending("loading checkpoint", time.Second, 3)
	retried.LastFailure = nil
	if n := pendingEpoch(retried, now).note(); n != "" {
		t.Errorf("attempt 3 with no failure recorded: note %q", n)
	}
	silentStart := pending("", 0, 1)
	silentStart.LastHeartbeatTime = nil // never heartbeated: silent since it started
	if n := pendingEpoch(silentStart, now).note(); !strings.Contains(n, "no heartbeat for 1m0s") {
		t.Errorf("an attempt silent since it started a minute ago: note %q", n)
	}
	scheduled := pending("", time.Hour, 2)
	scheduled.State = enumspb.PENDING_ACTIVITY_STATE_SCHEDULED
	if n := pendingEpoch(scheduled, now).note(); strings.Contains(n, "no heartbeat") {
		t.Errorf("a scheduled attempt is waiting for a worker, not silent: %q", n)
	}
}

// `starter --wait` exits 0 when every combination completed or was
// skipped, 3 when any failed or was cancelled (or the sweep was), 2 for a
// bad command or spec, 1 for anything else.
func TestWaitsExitCodeSaysHowTheSweepEnded(t *testing.T) {
	o := func(status sweep.Status) sweep.Outcome {
		return sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16 + 8*len(status)}, Status: status}
	}
	for _, c := range []struct {
		p    workflows.SweepProgress
		code int
	}{
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Completed), o(sweep.Skipped)}}, 0},
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Completed), o(sweep.Failed)}}, 3},
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Cancelled)}}, 3},
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Completed)}, Cancelled: true}, 3},
		{workflows.SweepProgress{}, 0},
		// A large sweep lists a few rows: its counts say how all ended.
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Completed)}, Total: 500,
			Counts: map[sweep.Status]int{sweep.Completed: 400, sweep.Skipped: 100}}, 0},
		{workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Completed)}, Total: 500,
			Counts: map[sweep.Status]int{sweep.Completed: 499, sweep.Failed: 1}}, 3},
	} {
		err := checkEnded(c.p)
		if got := exitCode(err); got != c.code {
			t.Errorf("%+v: exit %d (%v), want %d", c.p.Combos, got, err, c.code)
		}
	}
	err := checkEnded(workflows.SweepProgress{Combos: []sweep.Outcome{o(sweep.Failed)}, Total: 500,
		Counts: map[sweep.Status]int{sweep.Completed: 480, sweep.Failed: 20}})
	if err == nil || !strings.Contains(err.Error(), "20 of 500") || !strings.Contains(err.Error(), "and 19 more") {
		t.Errorf("a large sweep with 20 failures, one listed: %v", err)
	}
	if exitCode(fmt.Errorf("spec: %w", sweep.ErrInvalid)) != 2 || exitCode(fmt.Errorf("x: %w", errUsage)) != 2 || exitCode(errors.New("dial")) != 1 {
		t.Error("exit codes of errors other than how a sweep ended")
	}
	// What --wait waits out, and what ends it.
	running := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	if followTrouble(t.Context(), running, sweepclient.ErrNoWorker) == "" || followTrouble(t.Context(), 0, errors.New("connection refused")) == "" ||
		followTrouble(t.Context(), 0, fmt.Errorf("%w with workflow ID x", sweepclient.ErrNoSweep)) != "" ||
		followTrouble(t.Context(), enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, errors.New("sweep ended failed")) != "" {
		t.Error("followTrouble")
	}
	for _, err := range []error{serviceerror.NewPermissionDenied("expired API key", ""), serviceerror.NewQueryFailed("nondeterminism"),
		serviceerror.NewInvalidArgument("bad")} {
		if followTrouble(t.Context(), running, err) != "" {
			t.Errorf("%T is waited out; it never mends", err)
		}
	}
	if followTrouble(t.Context(), running, serviceerror.NewUnavailable("restarting")) == "" {
		t.Error("an unavailable server is not waited out")
	}
}
