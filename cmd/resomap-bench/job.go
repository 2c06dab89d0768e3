package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// job is one training run through ResoMap's real activities: Prepare, then
// TrainEpoch per epoch with a resident model and checkpoints stored to a
// file store, as a worker runs them. Temporal's activity test environment
// runs them in-process: no server's scheduling is timed (that is
// BenchmarkEpochOverhead's).
type job struct {
	device, cacheDir string
	threads          int // libtorch's on a CPU (0: all cores)
	spec             sweep.Spec
	combo            sweep.Combination
}

// run trains the job, handing each epoch's output to onEpoch.
func (j job) run(onEpoch func(epoch int, out workflows.TrainEpochOutput)) error {
	tr, err := trainer.New("", j.device, j.threads)
	if err != nil {
		return err
	}
	tr.UseFastGPUPaths(true)
	tr.Data.CacheDir = j.cacheDir
	dir, err := os.MkdirTemp("", "resomap-job-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.NewFile(dir)
	if err != nil {
		return err
	}
	resident := engine.NewResidents(1)
	defer resident.Close()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	acts := &activities.Activities{Engine: &engine.Engine{Trainer: tr, Residents: resident}, Store: st, Logger: quiet}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	v, err := env.ExecuteActivity(acts.Prepare, workflows.PrepareInput{Spec: j.spec, Combination: j.combo})
	if err != nil {
		return err
	}
	var p workflows.Prepared
	if err := v.Get(&p); err != nil {
		return err
	}
	for e := 1; e <= j.spec.Epochs; e++ {
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: e})
		if err != nil {
			return err
		}
		var out workflows.TrainEpochOutput
		if err := v.Get(&out); err != nil {
			return err
		}
		onEpoch(e, out)
	}
	return nil
}

// fashionJob is the job bench/torch_train_reference.py trains: the first
// train images of Fashion-MNIST at res px, the first 2,000 test images to
// validate, batch 64, SGD with nesterov, weight decay 5e-4, cosine after
// one warm-up epoch, label smoothing 0.1, pad-crop 2 and flip; the sweep's
// default checkpointing (mid-epoch ones included).
func fashionJob(model string, res, epochs, train int, seed uint64, cacheDir string, threads int) job {
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Seed = "job", []string{model}, []int{res}, epochs, seed
	spec.Data, spec.AllowUpsampling, spec.TrainLimit, spec.ValLimit = "fashion-mnist", true, train, 2000
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 64, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true,
		WeightDecay: 5e-4, Schedule: "cosine", WarmupEpochs: 1, LabelSmoothing: 0.1, CropPadding: 2, Flip: true}}
	return job{device: "cpu", cacheDir: cacheDir, threads: threads, spec: spec, combo: sweep.Combination{Model: model, Resolution: res, Seed: seed}}
}

// jobRow is one epoch of a job, in bench/torch_train_reference.py's form.
type jobRow struct {
	Epoch            int     `json:"epoch"`
	TrainImagesPerS  float64 `json:"train_images_per_s"` // the epoch's images over its time outside validation
	TrainSeconds     float64 `json:"train_seconds"`
	StepSeconds      float64 `json:"step_seconds"` // of which in training steps
	CheckpointSecond float64 `json:"checkpoint_seconds"`
	ValSeconds       float64 `json:"val_seconds"`
	ValAcc           float64 `json:"val_acc"`
	ValLoss          float64 `json:"val_loss"`
}

// runFashionJob trains the job and prints it as one JSON line.
func runFashionJob(j job) error {
	var rows []jobRow
	var best workflows.TrainEpochOutput
	var wall float64
	steps := j.spec.TrainLimit / j.spec.Hyper.BatchSize
	err := j.run(func(e int, out workflows.TrainEpochOutput) {
		m := out.Progress.Metrics[len(out.Progress.Metrics)-1]
		train := out.WallSeconds - out.EvalSeconds
		rows = append(rows, jobRow{Epoch: e, TrainImagesPerS: float64(steps*j.spec.Hyper.BatchSize) / train, TrainSeconds: train,
			StepSeconds: out.TrainSeconds, CheckpointSecond: out.CheckpointSeconds, ValSeconds: out.EvalSeconds,
			ValAcc: m.ValAcc, ValLoss: m.ValLoss})
		wall += out.WallSeconds
		best = out
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"impl": "resomap", "model": j.combo.Model, "res": j.combo.Resolution,
		"seed": j.combo.Seed, "epochs": j.spec.Epochs, "train": steps * j.spec.Hyper.BatchSize, "threads": j.threads,
		"epoch_rows": rows, "wall_seconds": wall, "best_acc": best.Progress.BestValAcc})
}

// epochSplit trains resnet18 at 224 px on data for a few epochs and prints
// each epoch's time split and the share outside training and validation
// (target on a GPU: <= 2%; the server's own scheduling, ~0.1 s an epoch on
// CPU, is measured by BenchmarkEpochOverhead).
func epochSplit(device, data, cacheDir string, epochs, batch, limit int) error {
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Data, spec.Seed = "epochs", []string{"resnet18"}, []int{224}, epochs, data, 1
	spec.TrainLimit, spec.ValLimit = limit, limit
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: batch, Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Schedule: "cosine", Flip: true}}
	j := job{device: device, cacheDir: cacheDir, spec: spec, combo: sweep.Combination{Model: "resnet18", Resolution: 224}}
	var total sweep.Outcome
	err := j.run(func(e int, out workflows.TrainEpochOutput) {
		o := sweep.Outcome{
			Timings: sweep.Timings{EpochRuns: 1, TrainSeconds: out.TrainSeconds, EvalSeconds: out.EvalSeconds, CkptSeconds: out.CheckpointSeconds, RestoreSeconds: out.RestoreSeconds, EpochSeconds: out.WallSeconds, CacheBuildSeconds: out.CacheBuildSeconds},
		}
		sp, _ := o.EpochSplit()
		fmt.Printf("epoch %d (resident %v): %s", e, out.Resident, sp)
		if o.CacheBuildSeconds > 0 {
			fmt.Printf("; data cache built in %.1fs (apart)", o.CacheBuildSeconds)
		}
		fmt.Println()
		total.EpochRuns++
		total.TrainSeconds += o.TrainSeconds
		total.EvalSeconds += o.EvalSeconds
		total.CkptSeconds += o.CkptSeconds
		total.RestoreSeconds += o.RestoreSeconds
		total.EpochSeconds += o.EpochSeconds
		total.CacheBuildSeconds += o.CacheBuildSeconds
	})
	if err != nil {
		return err
	}
	sp, _ := total.EpochSplit()
	fmt.Printf("resnet18 224px bs%d on %s, %d epochs of %s: per epoch %s (target <= 2%%)\n", batch, device, epochs, data, sp)
	return nil
}
