package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/store"
)

// Each checkpoint is committed once. The same checkpoint saved again (a
// retried save) is fine; another one under the same name (a zombie attempt
// on other numbers) loses: the committed record and files stay as they
// were, and the loser's files are removed. On file and S3.
func TestCheckpointsAreCommittedOnce(t *testing.T) {
	ctx := context.Background()
	fileStore, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, s3Store := s3Repo(t)
	for _, st := range []store.Store{fileStore, s3Store} {
		repo := checkpoint.Repo{Store: st, Prefix: "runs/x"}
		first := fakeCheckpoint(3, 0, 64<<10, 1)
		key, err := repo.Save(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Save(ctx, first); err != nil {
			t.Fatalf("%s: saving the same checkpoint again: %v", st.URL(), err)
		}
		zombie := fakeCheckpoint(3, 0, 64<<10, 2)
		if _, err := repo.Save(ctx, zombie); !errors.Is(err, checkpoint.ErrCommitted) {
			t.Fatalf("%s: a different epoch 3: %v, want ErrCommitted", st.URL(), err)
		}
		got, err := repo.Load(ctx, key)
		if err != nil || string(got.Model) != string(first.Model) {
			t.Fatalf("%s: the committed checkpoint changed (%v)", st.URL(), err)
		}
		infos, _ := st.List(ctx, path.Dir(key)+"/")
		if len(infos) != 3 {
			var names []string
			for _, in := range infos {
				names = append(names, path.Base(in.Key))
			}
			t.Errorf("%s: files %v, want the committed record and its two tensor files", st.URL(), names)
		}
	}
}

// failingBlobs fails the n-th write (Put or PutIfAbsent): a worker killed
// between the writes of a save.
type failingBlobs struct {
	store.Store
	n int
}

var errKilled = errors.New("killed")

func (f *failingBlobs) count() error {
	f.n--
	if f.n == 0 {
		return errKilled
	}
	return nil
}

func (f *failingBlobs) Put(ctx context.Context, key string, r io.Reader) error {
	if err := f.count(); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, r)
}

func (f *failingBlobs) PutIfAbsent(ctx context.Context, key string, b []byte) error {
	if err := f.count(); err != nil {
		return err
	}
	return f.Store.PutIfAbsent(ctx, key, b)
}

// A save or an export of best_model/final_model killed between any two of
// its writes leaves nothing torn: the previous checkpoint stays the latest,
// and best/final either verify or are absent until the next export, which
// completes them. Retention never deletes the best epoch, which best_model
// refers to until its copy is exported.
func TestKilledBetweenWritesLeavesNothingTorn(t *testing.T) {
	ctx := context.Background()
	for _, s := range []string{"file", "s3"} {
		var st store.Store
		if s == "file" {
			st, _ = store.NewFile(t.TempDir())
		} else {
			_, st = s3Repo(t)
		}
		repo := checkpoint.Repo{Store: st, Prefix: "runs/x"}
		var bestKey string
		for e := 1; e <= 5; e++ {
			c := fakeCheckpoint(e, 0, 32<<10, uint64(e))
			c.Record.BestEpoch = 2
			key, err := repo.Save(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if e == 2 {
				bestKey = key
			}
		}
		for kill := 1; kill <= 3; kill++ {
			faulty := checkpoint.Repo{Store: &failingBlobs{Store: st, n: kill}, Prefix: "runs/x"}
			if _, err := faulty.Save(ctx, fakeCheckpoint(6, 0, 32<<10, 60)); !errors.Is(err, errKilled) {
				t.Fatalf("%s: save killed at write %d: %v", s, kill, err)
			}
			if c, _, _ := repo.LoadLatest(ctx, repo.Combo("resnet", "resnet18", 224)); c == nil || c.Record.EpochsDone != 5 {
				t.Fatalf("%s: killed at write %d, the latest is no longer epoch 5", s, kill)
			}
			faulty.Store = &failingBlobs{Store: st, n: kill}
			if _, err := faulty.Export(ctx, bestKey, checkpoint.BestName); !errors.Is(err, errKilled) {
				t.Fatalf("%s: export killed at write %d: %v", s, kill, err)
			}
			if c, err := repo.Load(ctx, strings.Replace(bestKey, "epoch_0002", "best_model", 1)); err == nil && c.Record.EpochsDone != 2 {
				t.Fatalf("%s: a torn best_model verifies as epoch %d", s, c.Record.EpochsDone)
			}
		}
		exported, err := repo.Export(ctx, bestKey, checkpoint.BestName)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := repo.Load(ctx, exported); err != nil || c.Record.EpochsDone != 2 {
			t.Fatalf("%s: best_model after a completed export: %v", s, err)
		}
		doomed, err := repo.Prunable(ctx, repo.Combo("resnet", "resnet18", 224), 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range doomed.Checkpoints {
			if d.Name == checkpoint.EpochName(2) {
				t.Errorf("%s: retention would delete the best epoch", s)
			}
		}
	}
}
