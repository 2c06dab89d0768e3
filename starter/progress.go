package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/sweepclient"
	"github.com/resomap/resomap/workflows"
)

// Rendering a sweep's progress: the table, bars and retry notes that
// status and start --wait print.

// epochState is what the server knows of a running combination's epoch
// activity: the step its heartbeat reported, and the attempt with the
// last failure when earlier attempts failed.
type epochState struct {
	done, of int
	phase    string // what the attempt does now: "validating", "saving checkpoint", ...
	retry    string // "attempt 3: no space left on device"; "" when none failed
	// silent: the attempt has not heartbeated for longer than its
	// heartbeat timeout (its worker is lost or stuck; the server retries
	// it when the timeout is noticed).
	silent string
}

// note is why the epoch is not progressing, for the status table: a stall
// the attempt reported, a silence, the retry; "" when nothing is wrong.
func (es epochState) note() string {
	var parts []string
	if strings.HasPrefix(es.phase, workflows.PhaseStalled) {
		parts = append(parts, es.phase)
	}
	if es.silent != "" {
		parts = append(parts, es.silent)
	}
	if es.retry != "" {
		parts = append(parts, "retrying, "+es.retry)
	}
	return strings.Join(parts, "; ")
}

// epochOf describes a running combination's pending epoch activity.
func epochOf(ctx context.Context, c client.Client, childID string) epochState {
	desc, err := c.DescribeWorkflowExecution(ctx, childID, "")
	if err != nil {
		return epochState{}
	}
	var es epochState
	for _, pa := range desc.PendingActivities {
		// The epoch's (or the evaluation's) activity: a pending MLflow sync
		// beside it says nothing of the training.
		switch pa.GetActivityType().GetName() {
		case workflows.ActivityTrainEpoch, workflows.ActivityEvaluateAt:
			return pendingEpoch(pa, time.Now())
		}
		es = pendingEpoch(pa, time.Now())
	}
	return es
}

// pendingEpoch reads a pending activity as of now.
func pendingEpoch(pa *workflowpb.PendingActivityInfo, now time.Time) epochState {
	es := epochState{retry: retryNote(pa)}
	var hb workflows.Heartbeat
	if pa.HeartbeatDetails != nil && converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &hb) == nil {
		es.done, es.of, es.phase = hb.Done, hb.Of, hb.Phase
	}
	timeout := pa.GetActivityOptions().GetHeartbeatTimeout().AsDuration()
	if pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED || timeout <= 0 {
		return es
	}
	last := pa.GetLastHeartbeatTime().AsTime()
	if pa.GetLastHeartbeatTime() == nil || last.Before(pa.GetLastStartedTime().AsTime()) {
		last = pa.GetLastStartedTime().AsTime()
	}
	if quiet := now.Sub(last); quiet > timeout {
		es.silent = fmt.Sprintf("no heartbeat for %v (timeout %v): worker %s lost or stuck, the epoch will be retried",
			quiet.Round(time.Second), timeout, pa.GetLastWorkerIdentity())
	}
	return es
}

// retryNote says which attempt a pending activity is on and why the last
// one failed; "" when it has not failed.
func retryNote(pa *workflowpb.PendingActivityInfo) string {
	if pa.GetAttempt() < 2 || pa.GetLastFailure() == nil {
		return ""
	}
	return fmt.Sprintf("attempt %d: %s", pa.GetAttempt(), pa.GetLastFailure().GetMessage())
}

func bar(frac float64, width int) string {
	n := int(frac*float64(width) + 0.5)
	n = max(0, min(width, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// follow renders per-combination progress bars until the sweep ends. It
// follows through what a long sweep meets: with no worker (none started
// yet, all restarting, a slow one) it shows the server's view and waits;
// a lost connection to the server is retried. It returns only when the
// sweep has ended, the sweep does not exist, or ctx ends.
func follow(ctx context.Context, c client.Client, id string, w io.Writer) (workflows.SweepProgress, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	last := map[string]string{}
	drawn := 0
	lastTrouble := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		p, st, err := sweepclient.Client{Temporal: c}.Progress(ctx, id)
		switch trouble := followTrouble(ctx, st, err); {
		case trouble == "" && err != nil:
			return p, err
		case trouble != "":
			if trouble != lastTrouble {
				fmt.Fprintf(w, "%s; still following (Ctrl-C stops following, not the sweep)\n", trouble)
				if errors.Is(err, sweepclient.ErrNoWorker) {
					_ = statusFromServer(ctx, c, id, w)
				}
				lastTrouble, drawn = trouble, 0
			}
		default:
			if lastTrouble != "" {
				fmt.Fprintln(w, "a worker answers again")
				lastTrouble = ""
			}
			drawn = drawProgress(ctx, c, id, p, w, tty, drawn, last)
			if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("stopped following (the sweep goes on; `starter status` shows it): %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// followTrouble says why a progress read failed in a way worth waiting
// out (no worker answered; the server did not, while the sweep ran or
// before it was described), "" when it succeeded or ended for good (the
// sweep is not there, or has ended and its result says how).
func followTrouble(ctx context.Context, st enumspb.WorkflowExecutionStatus, err error) string {
	switch {
	case err == nil || ctx.Err() != nil || errors.Is(err, sweepclient.ErrNoSweep):
		return ""
	case errors.Is(err, sweepclient.ErrNoWorker):
		return fmt.Sprintf("no worker answered in %v (none started yet, restarting, or busy)", sweepclient.WorkerWait)
	case (st == 0 || st == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING) && transient(err):
		return fmt.Sprintf("the server did not answer (%v)", err)
	}
	return ""
}

// transient: an error a later call may not meet (the server unreachable,
// restarting or overloaded), unlike a refused credential, a bad request
// or a workflow task that fails (which waiting does not mend).
func transient(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var exhausted *serviceerror.ResourceExhausted
	var internal *serviceerror.Internal
	var denied *serviceerror.PermissionDenied
	var query *serviceerror.QueryFailed
	var invalid *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &denied), errors.As(err, &query), errors.As(err, &invalid):
		return false
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.As(err, &exhausted), errors.As(err, &internal),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// Not a server's answer at all (a dropped connection): worth waiting out.
	var svc serviceerror.ServiceError
	var raw interface{ GRPCStatus() *grpcstatus.Status }
	return !errors.As(err, &svc) && !errors.As(err, &raw)
}

// drawProgress draws one line per combination (redrawn in place on a
// terminal; elsewhere a line when a combination changes) and returns the
// lines drawn.
func drawProgress(ctx context.Context, c client.Client, id string, p workflows.SweepProgress, w io.Writer, tty bool, drawn int, last map[string]string) int {
	var lines, notes []string
	for _, o := range p.Combos {
		var es epochState
		if o.Status == sweep.Running {
			es = epochOf(ctx, c, workflows.ChildID(id, o.ID()))
		}
		lines, notes = append(lines, progressLine(o, es)), append(notes, es.retry+es.silent)
	}
	// A large sweep's progress lists a few rows: its counts say the rest.
	counts := ""
	if !p.Listed() {
		counts = countsLine(p)
	}
	if tty {
		if counts != "" {
			lines = append([]string{counts + eta(p, time.Now())}, lines...)
		}
		if drawn > 0 {
			fmt.Fprintf(w, "\x1b[%dA", drawn)
		}
		for _, l := range lines {
			fmt.Fprintf(w, "\x1b[2K%s\n", l)
		}
		return len(lines)
	}
	// Not a terminal: print a combination only when its epoch or status
	// changes, so logs stay readable.
	if counts != "" && last[""] != counts { // (not the estimate: it changes every second)
		last[""] = counts
		fmt.Fprintln(w, counts+eta(p, time.Now()))
	}
	for i, o := range p.Combos {
		key := fmt.Sprintf("%d %s %s", o.EpochsDone, o.Status, notes[i])
		if last[o.ID()] != key {
			last[o.ID()] = key
			fmt.Fprintln(w, lines[i])
		}
	}
	return 0
}

// progressLine is a combination's bar and figures.
func progressLine(o sweep.Outcome, es epochState) string {
	done, of := es.done, es.of
	frac := float64(o.EpochsDone) / float64(max(1, o.Epochs))
	if of > 0 {
		frac += float64(done) / float64(of) / float64(max(1, o.Epochs))
	}
	line := fmt.Sprintf("%-18s %s epoch %d/%d", o.ID(), bar(frac, 24), o.EpochsDone, o.Epochs)
	if of > 0 {
		line += fmt.Sprintf(" step %d/%d", done, of)
	}
	if o.BestEpoch > 0 {
		line += fmt.Sprintf(" best val acc %.4f", o.BestValAcc)
	}
	line += " " + string(o.Status)
	if es.phase != "" {
		line += ", " + es.phase
	}
	if es.silent != "" {
		line += " (" + es.silent + ")"
	}
	if es.retry != "" {
		line += " (" + es.retry + ")"
	}
	return line
}

// errIncomplete: the sweep ended with combinations that neither completed
// nor were skipped (failed, cancelled), or its workflow ended otherwise:
// `starter --wait` exits 3.
var errIncomplete = sweepclient.ErrIncomplete

// checkEnded says how a followed sweep ended: nil when every combination
// completed or was skipped, errIncomplete naming the others otherwise.
func checkEnded(p workflows.SweepProgress) error {
	var bad []string
	for _, o := range p.Combos {
		if !o.Status.HasResult() {
			bad = append(bad, fmt.Sprintf("%s %s", o.ID(), o.Status))
		}
	}
	total, failed := len(p.Combos), len(bad)
	if p.Total > 0 { // the counts cover what the rows of a large sweep leave out
		total, failed = p.Total, p.Total-p.Counts[sweep.Completed]-p.Counts[sweep.Skipped]
		if more := failed - len(bad); more > 0 {
			bad = append(bad, fmt.Sprintf("and %d more (`starter status --failed` lists them)", more))
		}
	}
	if failed == 0 && !p.Cancelled {
		return nil
	}
	if failed == 0 {
		bad = append(bad, "the sweep was cancelled")
	}
	return fmt.Errorf("%w: %d of %d combinations did not complete: %s", errIncomplete, max(failed, 1), total, strings.Join(bad, ", "))
}

// printTable prints one row per combination; notes holds why running ones
// do not progress (epochState.note, by combination ID).
func printTable(w io.Writer, combos []sweep.Outcome, notes map[string]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tresolution\tstatus\tepochs\tbest val acc\tbest epoch\timages/s\ttraining time\tper epoch\tnote")
	for _, o := range combos {
		acc := "-"
		if o.BestEpoch > 0 {
			acc = fmt.Sprintf("%.4f", o.BestValAcc)
		}
		note := o.Reason
		if len(o.Resumes) > 0 {
			note = strings.TrimSpace(fmt.Sprintf("%s resumed %dx", note, len(o.Resumes)))
		}
		if r := notes[o.ID()]; r != "" {
			note = strings.TrimSpace(note + " " + r)
		}
		if o.Tracking != "" {
			note = strings.TrimSpace(note + "; MLflow run " + o.Tracking)
		}
		if o.ContendedEpochs > 0 {
			note = strings.TrimSpace(fmt.Sprintf("%s; %d epochs on a shared host (others used up to %.0f%% of its CPUs)", note, o.ContendedEpochs, 100*o.HostOthers))
		}
		if o.MixedNumerics() {
			note = strings.TrimSpace(fmt.Sprintf("%s; epochs under %d numerics (moved between unlike workers: %s)",
				note, len(o.Numerics), strings.Join(o.Numerics, "; then ")))
		}
		split := "-"
		if sp, ok := o.EpochSplit(); ok {
			split = sp.String()
		}
		model := o.Model
		if o.Seed != 0 {
			model = fmt.Sprintf("%s (seed %d)", o.Model, o.Seed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d/%d\t%s\t%d\t%.0f\t%s\t%s\t%s\n", model, o.Resolution, o.Status, o.EpochsDone, o.Epochs,
			acc, o.BestEpoch, o.DeviceImagesPerSec(), fmtDuration(o.EpochSeconds), split, note)
	}
	tw.Flush()
}
