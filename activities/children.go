package activities

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// DescribeChildren asks the server how combination workflows stand and
// returns those that have closed, with their result or how they ended: a
// sweep learns so of a child started by an earlier run that closed without
// its last progress signal (terminated, timed out, failed before it
// recorded). Without a Temporal client it knows of none.
func (a *Activities) DescribeChildren(ctx context.Context, in workflows.ChildrenInput) (workflows.ChildrenOutput, error) {
	var out workflows.ChildrenOutput
	if a.Temporal == nil {
		return out, nil
	}
	for _, id := range in.IDs {
		c, closed, err := a.describeChild(ctx, id)
		if err != nil {
			return out, fmt.Errorf("describe %s: %w", id, err)
		}
		if closed {
			out.Closed = append(out.Closed, c)
		}
	}
	return out, nil
}

// describeChild says whether workflow id (its latest run) has closed, and how.
func (a *Activities) describeChild(ctx context.Context, id string) (workflows.ClosedChild, bool, error) {
	c := workflows.ClosedChild{ID: id}
	d, err := a.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		c.Status, c.Reason = sweep.Failed, "its workflow is not on the server (closed longer ago than the namespace keeps histories)"
		return c, true, nil
	}
	if err != nil {
		return c, false, err
	}
	st := d.WorkflowExecutionInfo.Status
	switch st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return c, false, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var o sweep.Outcome
		if err := a.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &o); err != nil {
			return c, false, err
		}
		c.Result, c.Status = &o, o.Status
		return c, true, nil
	}
	c.Status = map[enumspb.WorkflowExecutionStatus]sweep.Status{
		enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED: sweep.Terminated,
		enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:  sweep.TimedOut,
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:   sweep.Cancelled,
	}[st]
	if c.Status == "" {
		c.Status = sweep.Failed
	}
	c.Reason = string(c.Status) + " without recording an outcome"
	if err := a.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		c.Reason = fmt.Sprintf("%s without recording an outcome: %v", c.Status, err)
	}
	return c, true, nil
}
