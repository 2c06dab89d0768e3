package activities_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/workflows"
)

// confirmer answers synchronous heartbeats as the server would.
type confirmer struct {
	client.Client // nothing else is asked of it
	err           error
}

func (c confirmer) RecordActivityHeartbeat(context.Context, []byte, ...any) error { return c.err }

func (c confirmer) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return nil, c.err
}

// An attempt the server gave up on (a worker frozen past its heartbeat
// timeout, then woken) stores nothing: its checkpoints are refused before
// they are written. A pause (a cancel the workflow asked for) still
// checkpoints.
func TestSupersededAttemptStoresNothing(t *testing.T) {
	acts, p, env := setup(t)
	acts.Temporal = confirmer{err: serviceerror.NewNotFound("workflow execution already completed")}
	_, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1, CheckpointSteps: 3})
	if err == nil {
		t.Fatal("a superseded attempt finished its epoch")
	}
	var stored []string
	root := acts.Store.URL()[len("file://"):]
	filepath.WalkDir(filepath.Join(root, p.Prefix), func(f string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			stored = append(stored, f)
		}
		return nil
	})
	if len(stored) != 0 {
		t.Fatalf("a superseded attempt stored %v", stored)
	}

	acts.Temporal = confirmer{err: temporal.NewCanceledError()}
	v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1, CheckpointSteps: 3})
	if err != nil {
		t.Fatalf("with a cancel requested the attempt still checkpoints: %v", err)
	}
	var out workflows.TrainEpochOutput
	v.Get(&out)
	if out.Key == "" || errors.Is(err, context.Canceled) {
		t.Fatalf("output %+v", out)
	}
}
