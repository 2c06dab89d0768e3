// Package sweepclient is a client of sweep workflows: it starts a sweep,
// reads its progress, pauses, resumes or cancels it (or one of its
// combinations), grows it, and reads the spec it last ran with. The
// starter is its command line; any other program drives sweeps through it
// alike. What it says is typed (errors to test with errors.Is, results),
// never words to match.
package sweepclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// Client drives sweeps through a Temporal client.
type Client struct {
	Temporal  client.Client
	TaskQueue string // where a sweep it starts runs
}

var (
	// ErrNoSweep: the server has no sweep by that workflow ID.
	ErrNoSweep = errors.New("no sweep")
	// ErrNoWorker: no worker took a query or update in WorkerWait.
	ErrNoWorker = errors.New("no worker answered")
	// ErrIncomplete: the sweep ended without completing every combination
	// (its workflow failed, was terminated or timed out).
	ErrIncomplete = errors.New("sweep incomplete")
	// ErrAlreadyRunning: a sweep runs by that workflow ID.
	ErrAlreadyRunning = errors.New("sweep already running")
)

// WorkerWait is how long a query or update waits for a worker to take it
// before the client answers from what the server knows.
const WorkerWait = 3 * time.Second

// Start starts spec's sweep as workflow id and gives its run's ID.
func (c Client) Start(ctx context.Context, id string, spec sweep.Spec) (runID string, err error) {
	run, err := c.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: c.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("sweep %s: %d models x %d resolutions, %d epochs", spec.Name, len(spec.Models), len(spec.Resolutions), spec.Epochs),
	}, workflows.Sweep, workflows.SweepInput{Spec: spec})
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return "", fmt.Errorf("%w: sweep %s as %s", ErrAlreadyRunning, spec.Name, id)
		}
		return "", fmt.Errorf("start sweep %s: %w", spec.Name, err)
	}
	return run.GetRunID(), nil
}

// Progress is the live progress of a running sweep, or the result of one
// that ended, with its workflow's status. ErrNoWorker: it runs, but no
// worker answered the query in WorkerWait.
func (c Client) Progress(ctx context.Context, id string) (workflows.SweepProgress, enumspb.WorkflowExecutionStatus, error) {
	var p workflows.SweepProgress
	st, err := c.status(ctx, id)
	if err != nil {
		return p, 0, err
	}
	if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		err := c.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &p)
		if err != nil && st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			// Failed, terminated or timed out: the sweep ended, incomplete.
			return p, st, fmt.Errorf("%w: sweep %s ended %s: %v", ErrIncomplete, id, StatusWord(st), err)
		}
		if err != nil {
			return p, st, fmt.Errorf("sweep %s completed, reading its result: %w", id, err)
		}
		return p, st, nil
	}
	// A query needs a worker to run the workflow: with none, it would
	// wait until the deadline.
	qctx, cancel := context.WithTimeout(ctx, WorkerWait)
	defer cancel()
	v, err := c.Temporal.QueryWorkflow(qctx, id, "", workflows.QueryProgress)
	if err != nil {
		if ctx.Err() == nil && (waitedOut(qctx, err) || noRecentPoller(err)) {
			return p, st, ErrNoWorker
		}
		return p, st, fmt.Errorf("query sweep %s: %w", id, err)
	}
	return p, st, v.Get(&p)
}

// status is the workflow's status; ErrNoSweep when the server has none.
func (c Client) status(ctx context.Context, id string) (enumspb.WorkflowExecutionStatus, error) {
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return 0, fmt.Errorf("%w with workflow ID %s (start it with `starter --sweep NAME`)", ErrNoSweep, id)
	case err != nil:
		return 0, err
	}
	return desc.WorkflowExecutionInfo.Status, nil
}

// StatusWord is a workflow status as a word ("completed", "failed", …).
func StatusWord(st enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_"))
}

// Control pauses, resumes or cancels (cmd: "pause", "resume", "cancel")
// workflow target, a sweep or one of its combinations. With no worker to
// run the update in WorkerWait, the command goes as a signal, which the
// server keeps until a worker returns: recorded says so.
func (c Client) Control(ctx context.Context, target, cmd string) (recorded bool, err error) {
	name, ok := map[string]string{"pause": workflows.UpdatePause, "resume": workflows.UpdateResume, "cancel": workflows.UpdateCancel}[cmd]
	if !ok {
		return false, fmt.Errorf("sweepclient: no command %q (pause, resume or cancel)", cmd)
	}
	st, err := c.status(ctx, target)
	switch {
	case errors.Is(err, ErrNoSweep):
		return false, fmt.Errorf("nothing to %s: no workflow %s", cmd, target)
	case err != nil:
		return false, err
	case st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return false, fmt.Errorf("nothing to %s: %s has already finished (%s)", cmd, target, StatusWord(st))
	}
	uctx, cancel := context.WithTimeout(ctx, WorkerWait)
	defer cancel()
	h, err := c.Temporal.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{WorkflowID: target, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(uctx, nil)
	}
	if err != nil && ctx.Err() == nil && waitedOut(uctx, err) {
		if err := c.Temporal.SignalWorkflow(ctx, target, "", cmd, nil); err != nil {
			return false, fmt.Errorf("%s %s: %w", cmd, target, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", cmd, target, err)
	}
	return false, nil
}

// Add grows running sweep id by in. An error for which FinishedMeanwhile
// says true: the sweep finished meanwhile (start it again with the union).
func (c Client) Add(ctx context.Context, id string, in workflows.AddInput) (workflows.AddOutput, error) {
	var out workflows.AddOutput
	h, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdateAdd,
		Args: []any{in}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, &out)
	}
	return out, err
}

// FinishedMeanwhile says whether an add to a running sweep failed because
// the sweep finished meanwhile: refused as finished (ErrTypeSweepFinished),
// or closed before the update reached it (the server's NotFound, "workflow
// execution already completed": the sweep was described running just
// before). Workers older than the type refused in words only, matched last.
func FinishedMeanwhile(err error) bool {
	var app *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeSweepFinished, errors.As(err, &nf):
		return true
	}
	return strings.Contains(err.Error(), "has finished: start it again")
}

// LastSpec is the spec sweep id last ran with: its latest run's input,
// grown, once it has finished, by what its result's combinations show
// were added while it ran. ok is false when the server does not know it.
func (c Client) LastSpec(ctx context.Context, id string, finished bool) (spec sweep.Spec, ok bool) {
	it := c.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return spec, false
	}
	ev, err := it.Next()
	if err != nil || ev.GetWorkflowExecutionStartedEventAttributes() == nil {
		return spec, false
	}
	var in workflows.SweepInput
	payloads := ev.GetWorkflowExecutionStartedEventAttributes().GetInput()
	if err := converter.GetDefaultDataConverter().FromPayloads(payloads, &in); err != nil {
		return spec, false
	}
	if !finished {
		return in.Spec, true
	}
	return c.withCombinationsOf(ctx, id, in.Spec), true
}

// withCombinationsOf grows spec by the combinations of the finished
// sweep's result (those added while it ran are not in its input).
func (c Client) withCombinationsOf(ctx context.Context, id string, spec sweep.Spec) sweep.Spec {
	var p workflows.SweepProgress
	if err := c.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &p); err != nil {
		return spec
	}
	var in workflows.AddInput
	if p.Spec != nil { // the sweep as it grew
		in = workflows.AddInput{Models: p.Spec.Models, Resolutions: p.Spec.Resolutions, Seeds: p.Spec.Seeds}
	} else {
		for _, o := range p.Combos {
			in.Models = append(in.Models, o.Model)
			in.Resolutions = append(in.Resolutions, o.Resolution)
			if o.Seed != 0 {
				in.Seeds = append(in.Seeds, o.Seed)
			}
		}
	}
	if grown, _, err := workflows.Grown(spec, in); err == nil {
		return grown
	}
	return spec
}

// noRecentPoller: the server refused a query at once because no worker
// polled the workflow's task queue lately (FailedPrecondition).
func noRecentPoller(err error) bool {
	var fp *serviceerror.FailedPrecondition
	return errors.As(err, &fp)
}

// waitedOut: a call under ctx ended by its deadline, here or on the server
// (which may answer DeadlineExceeded a moment before ctx ends).
func waitedOut(ctx context.Context, err error) bool {
	var de *serviceerror.DeadlineExceeded
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &de)
}
