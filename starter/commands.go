package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func start(ctx context.Context, o options, w io.Writer, logger *slog.Logger) error {
	spec, err := loadSpec(o)
	if err != nil {
		return err
	}
	c, err := temporalx.DialAndRegister(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.id
	if id == "" {
		id = workflows.SweepID(spec.Name)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: o.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("sweep %s: %d models x %d resolutions, %d epochs", spec.Name, len(spec.Models), len(spec.Resolutions), spec.Epochs),
	}, workflows.Sweep, workflows.SweepInput{Spec: spec})
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return fmt.Errorf("sweep %s is already running as %s: follow it with `starter status --sweep %s`", spec.Name, id, spec.Name)
		}
		return fmt.Errorf("start sweep %s: %w", spec.Name, err)
	}
	fmt.Fprintf(w, "started sweep %s: %d combinations (workflow %s, run %s)\nWeb UI: %s\n",
		spec.Name, len(spec.Combinations()), id, run.GetRunID(), uiURL(id))
	if !o.wait {
		return nil
	}
	p, err := follow(ctx, c, id, w)
	if err != nil {
		return err
	}
	printTable(w, p.Combos, nil)
	if err := writeReport(ctx, o.store, spec.Name, o.out, o.pricePerHour, w); err != nil {
		fmt.Fprintln(w, "report:", err)
	}
	fmt.Fprintf(w, "Web UI: %s\n", uiURL(id))
	return nil
}

// sweepProgress returns the live progress of a running sweep, or the result
// of a finished one.
func sweepProgress(ctx context.Context, c client.Client, id string) (workflows.SweepProgress, enumspb.WorkflowExecutionStatus, error) {
	var p workflows.SweepProgress
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return p, 0, fmt.Errorf("no sweep with workflow ID %s (start it with `starter --sweep NAME`)", id)
		}
		return p, 0, err
	}
	st := desc.WorkflowExecutionInfo.Status
	if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		err := c.GetWorkflow(ctx, id, "").Get(ctx, &p)
		if err != nil {
			return p, st, fmt.Errorf("sweep %s ended %s: %w", id, strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_")), err)
		}
		return p, st, nil
	}
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return p, st, fmt.Errorf("query sweep %s (is a worker running?): %w", id, err)
	}
	return p, st, v.Get(&p)
}

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

func status(ctx context.Context, o options, w io.Writer, logger *slog.Logger) error {
	if o.sweep == "" && o.id == "" {
		return fmt.Errorf("%w: status needs --sweep NAME or --id ID", errUsage)
	}
	c, err := temporalx.Dial(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	id := sweepID(o)
	if o.combination != "" {
		v, err := c.QueryWorkflow(ctx, workflows.ChildID(id, o.combination), "", workflows.QueryProgress)
		if err != nil {
			return fmt.Errorf("combination %s of %s: %w", o.combination, id, err)
		}
		var out sweep.Outcome
		if err := v.Get(&out); err != nil {
			return err
		}
		retries := map[string]string{out.ID(): epochOf(ctx, c, workflows.ChildID(id, o.combination)).retry}
		printTable(w, []sweep.Outcome{out}, retries)
		return nil
	}
	p, st, err := sweepProgress(ctx, c, id)
	if err != nil {
		return err
	}
	state := strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_"))
	switch {
	case p.Paused && st == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		state = "paused"
	case p.Cancelled:
		state = "cancelled"
	}
	fmt.Fprintf(w, "sweep %s (%s): %s\nWeb UI: %s\n", p.Name, id, state, uiURL(id))
	retries := map[string]string{}
	for _, co := range p.Combos {
		if co.Status == sweep.Running || co.Status == sweep.Paused {
			retries[co.ID()] = epochOf(ctx, c, workflows.ChildID(id, co.ID())).retry
		}
	}
	printTable(w, p.Combos, retries)
	return nil
}

func control(ctx context.Context, cmd string, o options, w io.Writer, logger *slog.Logger) error {
	if o.sweep == "" && o.id == "" {
		return fmt.Errorf("%w: %s needs --sweep NAME or --id ID", errUsage, cmd)
	}
	c, err := temporalx.Dial(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	id := sweepID(o)
	target := id
	if o.combination != "" {
		target = workflows.ChildID(id, o.combination)
	}
	name := map[string]string{"pause": workflows.UpdatePause, "resume": workflows.UpdateResume, "cancel": workflows.UpdateCancel}[cmd]
	desc, err := c.DescribeWorkflowExecution(ctx, target, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return fmt.Errorf("nothing to %s: no workflow %s", cmd, target)
		}
		return err
	}
	if st := desc.WorkflowExecutionInfo.Status; st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("nothing to %s: %s has already finished (%s)", cmd, target, strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_")))
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: target, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return fmt.Errorf("%s %s: %w", cmd, target, err)
	}
	if err := h.Get(ctx, nil); err != nil {
		return fmt.Errorf("%s %s: %w", cmd, target, err)
	}
	fmt.Fprintf(w, "%s: %s\n", target, map[string]string{"pause": "paused (running epochs checkpoint first)", "resume": "resumed", "cancel": "cancelled (running epochs checkpoint first)"}[cmd])
	return nil
}

func list(ctx context.Context, w io.Writer, logger *slog.Logger) error {
	c, err := temporalx.Dial(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'Sweep'"})
	if err != nil {
		return fmt.Errorf("list sweeps: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workflow id\tstatus\tstarted\tclosed")
	for _, e := range resp.Executions {
		closed := ""
		if e.CloseTime != nil {
			closed = e.CloseTime.AsTime().Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Execution.WorkflowId, strings.ToLower(strings.TrimPrefix(e.Status.String(), "WORKFLOW_EXECUTION_STATUS_")),
			e.StartTime.AsTime().Local().Format(time.DateTime), closed)
	}
	return tw.Flush()
}

// listRuns opens the store and lists every checkpoint file in it.
func listRuns(ctx context.Context, storeURL string) (store.Store, []store.Info, error) {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return nil, nil, err
	}
	infos, err := st.List(ctx, results.RunsDir+"/")
	return st, infos, err
}

// checkpoints lists every stored checkpoint per combination and whether it
// verifies.
func checkpoints(ctx context.Context, o options, w io.Writer) error {
	st, infos, err := listRuns(ctx, o.store)
	if err != nil {
		return err
	}
	models := map[string]bool{}
	for _, m := range splitList(o.models) {
		models[m] = true
	}
	resolutions := map[string]bool{}
	for _, r := range splitList(o.resolutions) {
		resolutions[r] = true
	}
	repo := checkpoint.Repo{Store: st}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tresolution\tcheckpoint\tepoch\tstep\tval loss\tval acc\tsize\ttime\tverified\tkey")
	n := 0
	for _, in := range infos {
		k, ok := checkpoint.ParseKey(in.Key)
		if !ok || len(models) > 0 && !models[k.Model] || len(resolutions) > 0 && !resolutions[strconv.Itoa(k.Resolution)] {
			continue
		}
		verified := "yes"
		c, err := repo.Load(ctx, in.Key)
		var r checkpoint.Record
		if err != nil {
			verified = "NO: " + err.Error()
			if b, rerr := store.ReadAll(ctx, st, in.Key); rerr == nil {
				r, _ = checkpoint.UnmarshalRecord(b)
			}
		} else {
			r = c.Record
		}
		vl, va := "-", "-"
		if k := len(r.Metrics); k > 0 {
			vl, va = fmt.Sprintf("%.4f", r.Metrics[k-1].ValLoss), fmt.Sprintf("%.4f", r.Metrics[k-1].ValAcc)
		}
		size := r.ModelFile.Size + r.OptimFile.Size + in.Size
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%.1f MB\t%s\t%s\t%s\n", k.Model, k.Resolution, k.Name, r.EpochsDone, r.StepInEpoch,
			vl, va, float64(size)/1e6, r.CreatedAt.Local().Format(time.DateTime), verified, in.Key)
		n++
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintf(w, "no checkpoints in %s\n", st.URL())
	}
	return nil
}

// gc applies retention to every combination in the store.
func gc(ctx context.Context, o options, w io.Writer) error {
	st, infos, err := listRuns(ctx, o.store)
	if err != nil {
		return err
	}
	combos := map[string]checkpoint.Combo{}
	for _, in := range infos {
		if k, ok := checkpoint.ParseKey(in.Key); ok {
			combos[k.Dir()] = k.Combo
		}
	}
	repo := checkpoint.Repo{Store: st}
	total := 0
	for _, d := range slices.Sorted(maps.Keys(combos)) {
		doomed, err := repo.Prunable(ctx, combos[d], checkpoint.KeepEpochs)
		if err != nil {
			return err
		}
		for _, ref := range doomed {
			total++
			if o.dryRun {
				fmt.Fprintf(w, "would delete %s\n", ref.Key())
				continue
			}
			if err := repo.DeleteCheckpoint(ctx, ref); err != nil {
				return err
			}
			fmt.Fprintf(w, "deleted %s\n", ref.Key())
		}
	}
	fmt.Fprintf(w, "%d checkpoints %s\n", total, map[bool]string{true: "would be deleted", false: "deleted"}[o.dryRun])
	if s3, ok := st.(*store.S3); ok && !o.dryRun {
		aborted, err := s3.AbortStaleUploads(ctx, 24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d abandoned multipart uploads aborted\n", len(aborted))
	}
	return nil
}

// writeReport builds the sweep's report folder and prints its table.
func writeReport(ctx context.Context, storeURL, sweepName, out string, pricePerHour float64, w io.Writer) error {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	r, err := report.Build(ctx, st, sweepName)
	if err != nil {
		return err
	}
	if pricePerHour > 0 {
		r.Price(pricePerHour)
	}
	if out == "" {
		out = filepath.Join("reports", sweepName)
	}
	files, err := r.Write(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreport: %s (%d files: resomap.png/.svg, heatmap, pareto, test-resolution map, learning curves, results.csv/.json, test_resolutions.csv, README.md)\n", out, len(files))
	r.Table(w)
	return nil
}

func reportCmd(ctx context.Context, o options, w io.Writer) error {
	if o.sweep == "" {
		return fmt.Errorf("%w: report needs --sweep NAME", errUsage)
	}
	return writeReport(ctx, o.store, sweepName(o.sweep), o.out, o.pricePerHour, w)
}
