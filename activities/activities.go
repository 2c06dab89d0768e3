// Package activities holds the Temporal activities of a sweep, one concern a
// file: prepare.go (validate a combination, look up a recorded result),
// claim.go (one workflow trains a config at a time), resume.go (where a
// training stands), train_epoch.go (one epoch, resuming from the last
// heartbeat checkpoint when retried), heartbeat.go and attempt_store.go
// (liveness, and checkpoints stored only by the current attempt),
// resident.go (models kept in memory between epochs), evaluate.go (test
// resolutions), record.go (results and best/final copies), retention.go.
// They log through activity.GetLogger, so each line names its workflow,
// run and attempt.
package activities

import (
	"context"
	"log/slog"
	"runtime"
	"sync"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// Activities is the contract the workflows call by name.
var _ workflows.ActivityAPI = (*Activities)(nil)

// Activities hold the worker's dependencies.
type Activities struct {
	Trainer *trainer.Trainer
	Store   store.Store
	Logger  *slog.Logger
	// Temporal confirms with the server, before a checkpoint is stored,
	// that this attempt is still the current one, and says whether a
	// claim's holder still runs (a Temporal client does both); nil skips
	// the confirmation and counts every holder as running.
	Temporal TemporalClient
	// Resident holds trainings in memory between epochs, so that a
	// combination's next epoch on this worker goes on from memory (nil:
	// none is kept).
	Resident *Residents
	// WorkerQueue is this worker's own task queue: epochs are sent there
	// first when this worker ran the epoch before ("": no stickiness).
	WorkerQueue string
	// Slots bounds the trainings running at once on this worker (its
	// concurrency) over its shared and own queues, and runs their libtorch
	// calls on threads of their own; nil: no bound.
	Slots *Slots

	pruning sync.Map    // combination folders being pruned now
	device  deviceShare // who uses the device now, for compute time
}

// cpuCores is the cores a CPU worker's device has (the Go scheduler's
// count, which follows a container's CPU quota), 0 on a GPU (see
// deviceShare).
func (a *Activities) cpuCores() int {
	if a.Trainer.Device != "cpu" {
		return 0
	}
	return runtime.GOMAXPROCS(0)
}

// residents is the worker's resident-model cache (one that keeps nothing
// when the worker has none).
func (a *Activities) residents() *Residents {
	if a.Resident == nil {
		return &Residents{}
	}
	return a.Resident
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
