package activities_test

import (
	"context"
	"errors"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// children is a Temporal server's view of some workflows: their status and
// how they closed.
type children struct {
	client.Client
	status  map[string]enumspb.WorkflowExecutionStatus
	results map[string]sweep.Outcome
	errs    map[string]error
}

func (c children) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	st, ok := c.status[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: st}}, nil
}

func (c children) GetWorkflow(_ context.Context, id, _ string) client.WorkflowRun {
	return run{result: c.results[id], err: c.errs[id]}
}

type run struct {
	client.WorkflowRun
	result sweep.Outcome
	err    error
}

func (r run) Get(_ context.Context, v any) error {
	if r.err != nil {
		return r.err
	}
	if o, ok := v.(*sweep.Outcome); ok {
		*o = r.result
	}
	return nil
}

// Only closed children are reported, each with how it really ended.
func TestDescribeChildrenReportsHowClosedChildrenEnded(t *testing.T) {
	done := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16, Seed: 2}, Status: sweep.Completed}
	acts := &activities.Activities{Temporal: children{
		status: map[string]enumspb.WorkflowExecutionStatus{
			"running": enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, "done": enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
			"killed": enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, "late": enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
			"broke": enumspb.WORKFLOW_EXECUTION_STATUS_FAILED,
		},
		results: map[string]sweep.Outcome{"done": done},
		errs:    map[string]error{"killed": errors.New("terminated by the Web UI"), "broke": errors.New("record result: store down")},
	}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	v, err := env.ExecuteActivity(acts.DescribeChildren, workflows.ChildrenInput{IDs: []string{"running", "done", "killed", "late", "broke", "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.ChildrenOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	want := map[string]sweep.Status{"done": sweep.Completed, "killed": sweep.Terminated, "late": sweep.TimedOut, "broke": sweep.Failed, "gone": sweep.Failed}
	if len(out.Closed) != len(want) {
		t.Fatalf("closed %+v, want %v", out.Closed, want)
	}
	for _, c := range out.Closed {
		if c.Status != want[c.ID] {
			t.Errorf("%s: %s (%s), want %s", c.ID, c.Status, c.Reason, want[c.ID])
		}
		if c.ID == "done" && (c.Result == nil || c.Result.Seed != 2) {
			t.Errorf("completed child's result %+v", c.Result)
		}
		if c.ID == "killed" && c.Reason == "" {
			t.Error("a terminated child has no reason")
		}
	}
}
