package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/resomap/resomap/sweep"
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
}

// epochOf describes a running combination's pending epoch activity.
func epochOf(ctx context.Context, c client.Client, childID string) epochState {
	desc, err := c.DescribeWorkflowExecution(ctx, childID, "")
	if err != nil {
		return epochState{}
	}
	var es epochState
	for _, pa := range desc.PendingActivities {
		es.retry = retryNote(pa)
		var hb workflows.Heartbeat
		if pa.HeartbeatDetails != nil && converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &hb) == nil {
			es.done, es.of, es.phase = hb.Done, hb.Of, hb.Phase
		}
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

// follow renders per-combination progress bars until the sweep ends.
func follow(ctx context.Context, c client.Client, id string, w io.Writer) (workflows.SweepProgress, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	last := map[string]string{}
	drawn := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		p, st, err := sweepProgress(ctx, c, id)
		if err != nil {
			return p, err
		}
		var lines, retries []string
		for _, o := range p.Combos {
			var es epochState
			if o.Status == sweep.Running {
				es = epochOf(ctx, c, workflows.ChildID(id, o.ID()))
			}
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
			if es.retry != "" {
				line += " (" + es.retry + ")"
			}
			lines, retries = append(lines, line), append(retries, es.retry)
		}
		if tty {
			if drawn > 0 {
				fmt.Fprintf(w, "\x1b[%dA", drawn)
			}
			for _, l := range lines {
				fmt.Fprintf(w, "\x1b[2K%s\n", l)
			}
			drawn = len(lines)
		} else {
			// Not a terminal: print a combination only when its epoch or
			// status changes, so logs stay readable.
			for i, o := range p.Combos {
				key := fmt.Sprintf("%d %s %s", o.EpochsDone, o.Status, retries[i])
				if last[o.ID()] != key {
					last[o.ID()] = key
					fmt.Fprintln(w, lines[i])
				}
			}
		}
		if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("stopped following (the sweep goes on; `starter status` shows it): %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// printTable prints one row per combination; retries holds the retry note
// of running ones whose epoch failed (by combination ID).
func printTable(w io.Writer, combos []sweep.Outcome, retries map[string]string) {
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
		if r := retries[o.ID()]; r != "" {
			note = strings.TrimSpace(note + " retrying, " + r)
		}
		if o.Tracking != "" {
			note = strings.TrimSpace(note + "; MLflow run " + o.Tracking)
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
			acc, o.BestEpoch, o.ImagesPerSec(), fmtDuration(o.EpochSeconds), split, note)
	}
	tw.Flush()
}
