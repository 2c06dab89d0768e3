package activities_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// A worker that trained epoch 1 goes on with epoch 2 from memory, and ends
// with the same weights as a worker that restores from the store.
func TestResidentModelContinuesExactly(t *testing.T) {
	acts, p, env := setup(t)
	acts.Engine.Residents = engine.NewResidents(1)
	defer acts.Engine.Residents.Close()
	run := func(epoch int) workflows.TrainEpochOutput {
		v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		var out workflows.TrainEpochOutput
		v.Get(&out)
		return out
	}
	first := run(1)
	if first.Resident || acts.Engine.Residents.Count() != 1 {
		t.Fatalf("epoch 1: resident %v, %d held", first.Resident, acts.Engine.Residents.Count())
	}
	// The worker's data cache was cold: epoch 1 built it, on a line of
	// its own, not in its restore.
	if first.CacheBuildSeconds <= 0 || first.RestoreSeconds < 0 {
		t.Fatalf("epoch 1 with a cold data cache: build %.3fs, restore %.3fs", first.CacheBuildSeconds, first.RestoreSeconds)
	}
	second := run(2)
	if !second.Resident || second.ResumedFrom.Epoch != 2 || second.Progress.EpochsDone != 2 || second.CacheBuildSeconds != 0 {
		t.Fatalf("epoch 2: %+v", second)
	}
	got, err := checkpoint.Repo{Store: acts.Store, Prefix: p.Prefix}.Load(context.Background(), second.Key)
	if err != nil {
		t.Fatal(err)
	}

	// The same two epochs on a worker that holds nothing: epoch 2 restores.
	other, p2, env2 := setup(t)
	for epoch := 1; epoch <= 2; epoch++ {
		v, err := env2.ExecuteActivity(other.TrainEpoch, workflows.TrainEpochInput{Prepared: p2, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		var out workflows.TrainEpochOutput
		v.Get(&out)
		if out.Resident {
			t.Fatal("a worker without resident models continued from memory")
		}
		if built := out.CacheBuildSeconds > 0; built != (epoch == 1) {
			t.Fatalf("epoch %d restored with the cache built in %.3fs (cold only at epoch 1)", epoch, out.CacheBuildSeconds)
		}
	}
	want, err := checkpoint.Repo{Store: other.Store, Prefix: p2.Prefix}.Load(context.Background(), second.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Model, want.Model) || !bytes.Equal(got.Optim, want.Optim) {
		t.Fatal("epoch 2 from memory differs from epoch 2 restored from the store")
	}
}

// A newer checkpoint in the store than the one a worker holds (another
// worker trained meanwhile) makes it drop what it holds and use the store.
func TestResidentModelIsDroppedWhenTheStoreMovedOn(t *testing.T) {
	acts, p, env := setup(t)
	acts.Engine.Residents = engine.NewResidents(1)
	defer acts.Engine.Residents.Close()
	if _, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	// Epoch 2 is trained by another worker on the same store.
	other, _, env2 := setup(t)
	other.Store = acts.Store
	if _, err := env2.ExecuteActivity(other.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	// Asked for epoch 2 again (its result was lost), the first worker
	// reports the stored epoch instead of training on from epoch 1.
	v, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.TrainEpochOutput
	v.Get(&out)
	if out.Resident || out.Progress.EpochsDone != 2 || acts.Engine.Residents.Count() != 0 {
		t.Fatalf("resident %v, %d epochs done, %d held", out.Resident, out.Progress.EpochsDone, acts.Engine.Residents.Count())
	}
}

// A worker bounded to two resident models, training six combinations one
// epoch each, never holds more than two models (running or held).
func TestResidentModelsAreBounded(t *testing.T) {
	acts, p, env := setup(t)
	acts.Engine.Residents = engine.NewResidents(2)
	defer acts.Engine.Residents.Close()
	base := acts.Engine.Trainer.Lib.LiveModels()
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs, spec.Data = "act", []string{"smallcnn"}, []int{16}, 2, p.Config.Data
	spec.TrainLimit, spec.ValLimit, spec.Seed = 64, 32, 9
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Schedule: "cosine"}}
	for seed := uint64(1); seed <= 6; seed++ { // six trainings: six seeds
		spec.Seed = seed
		v, err := env.ExecuteActivity(acts.Prepare, workflows.PrepareInput{Spec: spec, Combination: sweep.Combination{Model: "smallcnn", Resolution: 16}})
		if err != nil {
			t.Fatal(err)
		}
		var pr workflows.Prepared
		v.Get(&pr)
		if _, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: pr, Epoch: 1}); err != nil {
			t.Fatal(err)
		}
		if held, live := acts.Engine.Residents.Count(), acts.Engine.Trainer.Lib.LiveModels()-base; held > 2 || live > 2 {
			t.Fatalf("after seed %d: %d held, %d models live; bound 2", seed, held, live)
		}
	}
	if acts.Engine.Residents.Count() != 2 {
		t.Fatalf("%d held, want the bound, 2", acts.Engine.Residents.Count())
	}
}
