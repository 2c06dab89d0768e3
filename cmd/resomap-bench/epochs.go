package main

import (
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// epochSplit trains resnet18 at 224 px on data for a few epochs through
// ResoMap's real activities (Prepare, then TrainEpoch per epoch: resident
// model, checkpoints stored off the critical path, to a file store), run
// in-process by Temporal's activity test environment as no server can be
// carried to a GPU machine, and prints each epoch's time split and the
// share outside training and validation (target on a GPU: <= 2%; the
// server's own scheduling, ~0.1 s an epoch on CPU, is measured by
// BenchmarkEpochOverhead).
func epochSplit(device, data, cacheDir string, epochs, batch, limit int) error {
	tr, err := trainer.New("", device, 0)
	if err != nil {
		return err
	}
	tr.UseFastGPUPaths(true)
	tr.Data.CacheDir = cacheDir
	dir, err := os.MkdirTemp("", "resomap-epochs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.NewFile(dir)
	if err != nil {
		return err
	}
	resident := activities.NewResidents(1)
	defer resident.Close()
	acts := &activities.Activities{Trainer: tr, Store: st, Resident: resident,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Data, spec.Seed = "epochs", []string{"resnet18"}, []int{224}, epochs, data, 1
	spec.TrainLimit, spec.ValLimit = limit, limit
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: batch, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: "cosine", Flip: true}}
	v, err := env.ExecuteActivity(acts.Prepare, workflows.PrepareInput{Spec: spec, Combination: sweep.Combination{Model: "resnet18", Resolution: 224}})
	if err != nil {
		return err
	}
	var p workflows.Prepared
	if err := v.Get(&p); err != nil {
		return err
	}
	var total sweep.Outcome
	for e := 1; e <= epochs; e++ {
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: e})
		if err != nil {
			return err
		}
		var out workflows.TrainEpochOutput
		if err := v.Get(&out); err != nil {
			return err
		}
		o := sweep.Outcome{EpochRuns: 1, TrainSeconds: out.TrainSeconds, EvalSeconds: out.EvalSeconds, CkptSeconds: out.CheckpointSeconds,
			RestoreSeconds: out.RestoreSeconds, EpochSeconds: out.WallSeconds}
		sp, _ := o.EpochSplit()
		fmt.Printf("epoch %d (resident %v): %s\n", e, out.Resident, sp)
		total.EpochRuns++
		total.TrainSeconds += o.TrainSeconds
		total.EvalSeconds += o.EvalSeconds
		total.CkptSeconds += o.CkptSeconds
		total.RestoreSeconds += o.RestoreSeconds
		total.EpochSeconds += o.EpochSeconds
	}
	sp, _ := total.EpochSplit()
	fmt.Printf("resnet18 224px bs%d on %s, %d epochs of %s: per epoch %s (target <= 2%%)\n", batch, device, epochs, data, sp)
	return nil
}
