package activities_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

func setup(t *testing.T) (*activities.Activities, workflows.Prepared, *testsuite.TestActivityEnvironment) {
	return setupWith(t, "fashion-mnist")
}

func setupWith(t *testing.T, data string) (*activities.Activities, workflows.Prepared, *testsuite.TestActivityEnvironment) {
	t.Helper()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return setupOn(t, data, st)
}

// setupOn is setupWith on the store st.
func setupOn(t *testing.T, data string, st store.Store) (*activities.Activities, workflows.Prepared, *testsuite.TestActivityEnvironment) {
	t.Helper()
	tr, err := trainer.New("", "cpu", 2)
	if err != nil {
		t.Fatal(err)
	}
	tr.Data = dataset.Options{CacheDir: t.TempDir()}
	acts := &activities.Activities{Engine: &engine.Engine{Trainer: tr}, Store: st, Report: report.WriteFolder, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	v, err := env.ExecuteActivity(acts.Prepare, workflows.PrepareInput{Spec: actSpec(data), Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.Prepared
	v.Get(&p)
	return acts, p, env
}

// actSpec is the sweep setup prepares: smallcnn at 16 px, 2 short epochs.
func actSpec(data string) sweep.Spec {
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Data = "act", []string{"smallcnn"}, []int{16}, 2, data
	spec.TrainLimit, spec.ValLimit, spec.Seed = 640, 128, 9
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Schedule: "cosine", Flip: true}}
	return spec
}

// A retried TrainEpoch reads its heartbeat details and continues from that
// checkpoint's step, ending where an uninterrupted epoch ends.
func TestTrainEpochResumesFromHeartbeatCheckpoint(t *testing.T) {
	acts, p, env := setup(t)
	repo := checkpoint.Repo{Store: acts.Store, Prefix: p.Prefix}

	// The first attempt died after storing a checkpoint at step 7.
	key := interruptedAt(t, acts, p, 7)
	env.SetHeartbeatDetails(workflows.Heartbeat{Key: key, Done: 7})
	v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1, CheckpointSteps: 5})
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.TrainEpochOutput
	v.Get(&out)
	if out.ResumedFrom.Epoch != 1 || out.ResumedFrom.Step != 7 {
		t.Fatalf("resumed from %+v, want epoch 1 step 7", out.ResumedFrom)
	}
	if out.Progress.EpochsDone != 1 || out.Key != path.Join(repo.Combo("cnn", "smallcnn", 16).Dir(), "epoch_0001.json") {
		t.Fatalf("output %+v", out)
	}
	resumed, err := repo.Load(context.Background(), out.Key)
	if err != nil {
		t.Fatal(err)
	}

	// The same epoch without interruption, in another store.
	ref, err := acts.Engine.Trainer.Train(context.Background(), p.Config, nil, trainer.RunOptions{UntilEpoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resumed.Model, ref.Last.Model) || !bytes.Equal(resumed.Optim, ref.Last.Optim) {
		t.Fatal("resumed epoch differs from an uninterrupted one")
	}
}

func TestBadInputIsNotRetried(t *testing.T) {
	acts, p, env := setup(t)
	p.Config.Data = "/nonexistent"
	_, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeInvalidInput || !appErr.NonRetryable() {
		t.Fatalf("error %v, want a non-retryable InvalidInput", err)
	}
}

// onceWithHeartbeat runs activity name once, with heartbeat as its
// heartbeat timeout, which the SDK's test server enforces.
func onceWithHeartbeat(ctx workflow.Context, name string, heartbeat time.Duration, in any) (any, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Hour, HeartbeatTimeout: heartbeat,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
	var out any
	err := workflow.ExecuteActivity(ctx, name, in).Get(ctx, &out)
	return out, err
}

// interruptedAt is a first attempt of epoch 1 that died after storing a
// checkpoint at step: that checkpoint's key.
func interruptedAt(t *testing.T, acts *activities.Activities, p workflows.Prepared, step int) string {
	t.Helper()
	repo := checkpoint.Repo{Store: acts.Store, Prefix: p.Prefix}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var key string
	_, err := acts.Engine.Trainer.Train(ctx, p.Config, nil, trainer.RunOptions{
		UntilEpoch: 1,
		OnProgress: func(pr trainer.StepProgress) {
			if pr.Step == step {
				cancel()
			}
		},
		OnCheckpoint: func(ctx context.Context, c *checkpoint.Checkpoint) error {
			k, err := repo.Save(ctx, c)
			key = k
			return err
		},
	})
	if !errors.Is(err, trainer.ErrInterrupted) {
		t.Fatalf("first attempt: %v", err)
	}
	return key
}
