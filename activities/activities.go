// Package activities holds the Temporal activities of a sweep, one concern a
// file: prepare.go (validate a combination, look up a recorded result),
// claim.go (one workflow trains a config at a time), resume.go (where a
// training stands), train_epoch.go (one epoch, resuming from the last
// heartbeat checkpoint when retried), heartbeat.go and attempt_store.go
// (liveness, and checkpoints stored only by the current attempt),
// evaluate.go (test resolutions), record.go (results and best/final
// copies), retention.go, track.go (MLflow). The training itself runs in
// the worker's engine (package engine: slots, models kept in memory,
// device accounting); train_epoch.go and evaluate.go are its adapters.
// They log through activity.GetLogger, so each line names its workflow,
// run and attempt.
package activities

import (
	"context"
	"log/slog"
	"sync"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// Activities is the contract the workflows call by name.
var _ workflows.ActivityAPI = (*Activities)(nil)

// Activities hold the worker's dependencies.
type Activities struct {
	// Engine trains and evaluates: the worker's training slots, its
	// models kept in memory between epochs, its device's accounting.
	Engine *engine.Engine
	Store  store.Store
	Logger *slog.Logger
	// Temporal confirms with the server, before a checkpoint is stored,
	// that this attempt is still the current one, and says whether a
	// claim's holder still runs (a Temporal client does both); nil skips
	// the confirmation and counts every holder as running.
	Temporal TemporalClient
	// WorkerQueue is this worker's own task queue: epochs are sent there
	// first when this worker ran the epoch before ("": no stickiness).
	WorkerQueue string
	// Report writes a sweep's report folder (report.WriteFolder), which
	// log_report puts on the sweep's MLflow run; nil: none is.
	Report func(ctx context.Context, st store.Store, spec sweep.Spec, dir string) (files []string, err error)

	pruning sync.Map // combination folders being pruned now
}

// TemporalClient is what activities ask the Temporal server directly.
type TemporalClient interface {
	// RecordActivityHeartbeat heartbeats synchronously, failing when the
	// attempt is gone.
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...any) error
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	// GetWorkflow reads a closed workflow's result or failure.
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
}

func (a *Activities) repo(prefix string) checkpoint.Repo {
	return checkpoint.Repo{Store: a.Store, Prefix: prefix}
}

func (a *Activities) index() results.Index { return results.Index{Store: a.Store} }

func (a *Activities) claims() results.Claims { return results.Claims{Store: a.Store} }

// invalid wraps a bad-input error so Temporal does not retry it.
func invalid(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidInput, err)
}

// classify turns an error of a kind that retrying cannot mend into one
// Temporal does not retry, by its kind (internal/errkind), which every
// package's sentinels name where they are made.
func classify(err error) error {
	switch errkind.Of(err) {
	case errkind.OutOfMemory:
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeOutOfMemory, err)
	case errkind.Invalid:
		return invalid(err)
	}
	return err
}
