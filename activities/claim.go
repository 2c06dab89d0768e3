package activities

import (
	"context"
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/workflows"
)

// ClaimTraining grants the training of a config to one combination
// workflow at a time: two sweeps that share a config do not both train it.
// A claim whose holder no longer runs (terminated, failed) is taken over.
func (a *Activities) ClaimTraining(ctx context.Context, in workflows.ClaimInput) (workflows.ClaimOutput, error) {
	me := results.Claim{Owner: in.Owner, Since: time.Now().UTC()}
	holder, granted, err := a.claims().Take(ctx, in.ConfigHash, me)
	if err != nil || granted {
		return workflows.ClaimOutput{Granted: granted, Holder: holder.Owner}, err
	}
	running, err := a.isRunning(ctx, holder.Owner)
	if err != nil {
		return workflows.ClaimOutput{}, err
	}
	if running {
		return workflows.ClaimOutput{Holder: holder.Owner}, nil
	}
	activity.GetLogger(ctx).Warn("taking over the claim of a combination that no longer runs", "config", in.ConfigHash[:12], "holder", holder.Owner, "by", in.Owner)
	// Of several waiters that saw the same dead holder, one takes over.
	holder, granted, err = a.claims().TakeOver(ctx, in.ConfigHash, holder, me)
	return workflows.ClaimOutput{Granted: granted, Holder: holder.Owner}, err
}

// isRunning says whether a workflow is running (without a client: yes).
func (a *Activities) isRunning(ctx context.Context, workflowID string) (bool, error) {
	if a.Temporal == nil {
		return true, nil
	}
	d, err := a.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
