package trainer_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/trainer"
)

// A checkpoint stored in the background that fails to store fails the
// training, and nothing after it is committed: not the next mid-epoch
// checkpoint, not the epoch. An epoch whose tensor files fail to store is
// not committed either.
func TestFailedUploadCommitsNothingAfterIt(t *testing.T) {
	errStore := errors.New("store down")
	cfg := resumeConfig() // 20 steps an epoch
	tr := newTrainer(t, t.TempDir())

	var mu sync.Mutex
	var committed []checkpoint.Record
	_, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 1, CheckpointSteps: 5,
		OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
			if c.Record.Kind == checkpoint.KindMid && c.Record.StepInEpoch == 10 {
				return errStore
			}
			mu.Lock()
			committed = append(committed, c.Record)
			mu.Unlock()
			return nil
		}})
	if !errors.Is(err, errStore) {
		t.Fatalf("training went on after a failed upload: %v", err)
	}
	if len(committed) != 1 || committed[0].StepInEpoch != 5 {
		t.Fatalf("committed %d checkpoints (want only step 5's): %+v", len(committed), committed)
	}

	committed = nil
	_, err = tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 1,
		StoreFiles: func(context.Context, *checkpoint.Checkpoint) error { return errStore },
		OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
			committed = append(committed, c.Record)
			return nil
		}})
	if !errors.Is(err, errStore) || len(committed) != 0 {
		t.Fatalf("epoch committed without its files: %v, %d commits", err, len(committed))
	}
}

// With StoreFiles, an epoch's files are stored before its record is
// committed, and the committed checkpoint says so.
func TestEpochFilesAreStoredBeforeTheRecord(t *testing.T) {
	cfg := resumeConfig()
	tr := newTrainer(t, t.TempDir())
	var order []string
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 1,
		StoreFiles: func(_ context.Context, c *checkpoint.Checkpoint) error {
			order = append(order, "files "+c.Record.Name().String())
			return nil
		},
		OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
			if !c.FilesStored {
				t.Error("record committed without FilesStored")
			}
			order = append(order, "record "+c.Record.Name().String())
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "files epoch_0001" || order[1] != "record epoch_0001" {
		t.Fatalf("order %v", order)
	}
	if res.Last.Record.EpochsDone != 1 || len(res.Last.Record.Metrics) != 1 {
		t.Fatalf("committed record %+v", res.Last.Record)
	}
}
