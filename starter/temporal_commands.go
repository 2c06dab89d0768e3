package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/sweepclient"
	"github.com/resomap/resomap/workflows"
)

// The commands that talk to Temporal: start, status, pause/resume/cancel
// and list. Progress rendering is in progress.go; the commands that read
// the store (checkpoints, gc, report) in store_commands.go.

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
	return startSweep(ctx, c, id, spec, o, w)
}

// startSweep starts spec's sweep as workflow id and, with --wait, follows
// it and writes its report.
func startSweep(ctx context.Context, c client.Client, id string, spec sweep.Spec, o options, w io.Writer) error {
	runID, err := sweepclient.Client{Temporal: c, TaskQueue: o.taskQueue}.Start(ctx, id, spec)
	if errors.Is(err, sweepclient.ErrAlreadyRunning) {
		return fmt.Errorf("sweep %s is already running as %s: follow it with `starter status --sweep %s`", spec.Name, id, spec.Name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "started sweep %s: %d combinations (workflow %s, run %s)\nWeb UI: %s\n",
		spec.Name, len(spec.Combinations()), id, runID, uiURL(id))
	if !o.wait {
		return nil
	}
	p, err := follow(ctx, c, id, w)
	if err != nil {
		return err
	}
	if err := printRows(ctx, o, p, w, nil); err != nil {
		fmt.Fprintln(w, "status:", err)
	}
	if err := writeReport(ctx, o.store, spec.Name, o.out, o.pricePerHour, w); err != nil {
		fmt.Fprintln(w, "report:", err)
	}
	fmt.Fprintf(w, "Web UI: %s\n", uiURL(id))
	return checkEnded(p)
}

func status(ctx context.Context, o options, w io.Writer, logger *slog.Logger) error {
	if o.sweep == "" && o.id == "" {
		return fmt.Errorf("%w: status needs --sweep NAME or --id ID", errUsage)
	}
	if o.combination != "" && (o.all || o.failed) {
		return fmt.Errorf("%w: status takes --combination or --all/--failed, not both", errUsage)
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
		retries := map[string]string{out.ID(): epochOf(ctx, c, workflows.ChildID(id, o.combination)).note()}
		printTable(w, []sweep.Outcome{out}, retries)
		return nil
	}
	p, st, err := sweepclient.Client{Temporal: c}.Progress(ctx, id)
	if errors.Is(err, sweepclient.ErrNoWorker) {
		return statusFromServer(ctx, c, id, w)
	}
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
	if p.Tracking != "" {
		fmt.Fprintf(w, "MLflow tracking: %s\n", p.Tracking)
	}
	retries := map[string]string{}
	for _, co := range p.Combos {
		if co.Status == sweep.Running || co.Status == sweep.Paused {
			retries[co.ID()] = epochOf(ctx, c, workflows.ChildID(id, co.ID())).note()
		}
	}
	return printRows(ctx, o, p, w, retries)
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
	recorded, err := sweepclient.Client{Temporal: c}.Control(ctx, target, cmd)
	if err != nil {
		return err
	}
	if recorded {
		fmt.Fprintf(w, "%s: no worker answered in %v; the %s is recorded and applies when a worker returns\n", target, sweepclient.WorkerWait, cmd)
		return nil
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

// statusFromServer shows a sweep without a worker: every combination of
// its spec (as the run's input holds it), each with its workflow's last
// state as the server holds it (its search attributes, upserted at every
// epoch and status change), or pending when none started it yet.
func statusFromServer(ctx context.Context, c client.Client, id string, w io.Writer) error {
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = 'Combination' AND WorkflowId STARTS_WITH '%s/'", id)})
	if err != nil {
		return fmt.Errorf("sweep %s: no worker answered, and listing its combinations failed: %w", id, err)
	}
	fmt.Fprintf(w, "sweep %s: no worker answered in %v; what the server knows (each combination's last reported state; commands apply when a worker returns)\nWeb UI: %s\n",
		id, sweepclient.WorkerWait, uiURL(id))
	rows := map[string]string{}
	var order []string
	for _, name := range sweepCombinations(ctx, c, id) {
		order = append(order, name)
		rows[name] = fmt.Sprintf("%s\tpending (no worker has started it)\t0\t-\t-", name)
	}
	started := map[string]bool{}
	for _, e := range resp.Executions { // newest run first
		name := strings.TrimPrefix(e.Execution.WorkflowId, id+"/")
		if started[name] {
			continue
		}
		started[name] = true
		if _, ok := rows[name]; !ok {
			order = append(order, name) // added by a grow this run's input does not show
		}
		rows[name] = serverRow(name, e)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "combination\tstate\tepochs\tbest val acc\tworkflow")
	for _, name := range order {
		fmt.Fprintln(tw, rows[name])
	}
	tw.Flush()
	if len(started) == 0 {
		fmt.Fprintln(w, "no combination started yet")
	}
	return nil
}

// serverRow is a combination workflow's row from its search attributes.
func serverRow(name string, e *workflowpb.WorkflowExecutionInfo) string {
	attrs := e.GetSearchAttributes().GetIndexedFields()
	var state string
	var epoch int64
	var acc float64
	decode := func(key string, v any) { _ = converter.GetDefaultDataConverter().FromPayload(attrs[key], v) }
	decode(workflows.AttrStatus.GetName(), &state)
	decode(workflows.AttrEpoch.GetName(), &epoch)
	decode(workflows.AttrBestValAcc.GetName(), &acc)
	run := strings.ToLower(strings.TrimPrefix(e.Status.String(), "WORKFLOW_EXECUTION_STATUS_"))
	if e.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || state == "" {
		state = run + " (" + state + ")"
	}
	return fmt.Sprintf("%s\t%s\t%d\t%.4f\t%s", name, state, epoch, acc, run)
}

// sweepCombinations are the training IDs of the sweep's combinations as
// the input of its current run holds them (nil when it cannot be read):
// its spec's, or the grown list continue-as-new carried.
func sweepCombinations(ctx context.Context, c client.Client, id string) []string {
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil
	}
	first, err := it.Next()
	attrs := first.GetWorkflowExecutionStartedEventAttributes()
	if err != nil || attrs == nil {
		return nil
	}
	var in workflows.SweepInput
	if converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in) != nil {
		return nil
	}
	combos := in.Spec.Combinations()
	switch {
	case in.Carry == nil:
	case in.Carry.Combos != nil:
		combos = in.Carry.Combos
	case in.Carry.Growth != nil:
		if grown, err := in.Carry.Growth.Combinations(); err == nil {
			combos = grown
		}
	}
	ids := make([]string, len(combos))
	for i, co := range combos {
		ids[i] = co.ID()
	}
	return ids
}
