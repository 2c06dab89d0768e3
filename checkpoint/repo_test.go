package checkpoint_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// modelFileOf is the model tensor file that the record base.json in dir
// names (tensor files are named by their content).
func modelFileOf(t *testing.T, dir, base string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, base+".json"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := checkpoint.UnmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, rec.ModelFile.Name)
}

func fakeCheckpoint(epochsDone, step, size int, seed uint64) *checkpoint.Checkpoint {
	rng := rand.New(rand.NewPCG(seed, 1))
	model := make([]byte, size)
	for i := range model {
		model[i] = byte(rng.Uint32())
	}
	kind := checkpoint.KindEpoch
	if step > 0 {
		kind = checkpoint.KindMid
	}
	c := &checkpoint.Checkpoint{
		Record: checkpoint.Record{Kind: kind, Model: "resnet18", Family: "resnet", Resolution: 224,
			Progress: sweep.Progress{EpochsDone: epochsDone}, StepInEpoch: step, Epochs: 10},
		Model: model, Optim: model[:size/2],
	}
	c.Seal()
	return c
}

// faultyBlobs stops the S3 server once a tensor upload has sent `after`
// bytes, and restarts it a moment later: a crash in the middle of an upload.
type faultyBlobs struct {
	store.Store
	srv   *s3test.Server
	tb    testing.TB
	after int64
	once  sync.Once
	done  chan struct{}
}

type tripReader struct {
	r     io.Reader
	n     int64
	after int64
	trip  func()
}

func (t *tripReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if t.n >= t.after {
		t.trip()
	}
	return n, err
}

func (f *faultyBlobs) Put(ctx context.Context, key string, r io.Reader) error {
	if strings.HasSuffix(key, ".safetensors") {
		r = &tripReader{r: r, after: f.after, trip: func() {
			f.once.Do(func() {
				f.srv.Stop()
				go func() { f.srv.Restart(f.tb); close(f.done) }()
			})
		}}
	}
	return f.Store.Put(ctx, key, r)
}

func s3Repo(t *testing.T) (*s3test.Server, store.Store) {
	t.Helper()
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "ckpt")
	st, err := store.Open(context.Background(), "s3://ckpt/runs")
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}

// The S3 server dies in the middle of a 120 MB upload and comes back: the
// upload is retried and completes, or fails cleanly; either way the newest
// checkpoint that loads is whole, and the previous one stays good.
func TestServerCrashDuringUploadNeverExposesHalfACheckpoint(t *testing.T) {
	ctx := context.Background()
	srv, st := s3Repo(t)
	prev := fakeCheckpoint(1, 0, 1<<20, 1)
	repo := checkpoint.Repo{Store: st, Prefix: "sweep"}
	if _, err := repo.Save(ctx, prev); err != nil {
		t.Fatal(err)
	}
	next := fakeCheckpoint(1, 50, 120<<20, 2)
	fb := &faultyBlobs{Store: st, srv: srv, tb: t, after: 40 << 20, done: make(chan struct{})}
	_, saveErr := checkpoint.Repo{Store: fb, Prefix: "sweep"}.Save(ctx, next)
	<-fb.done
	t.Logf("save during the crash: %v", saveErr)

	got, problems, err := repo.LoadLatest(ctx, repo.Combo("resnet", "resnet18", 224))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("a half-written checkpoint became visible: %v", problems)
	}
	switch {
	case saveErr == nil:
		if got.Record.StepInEpoch != 50 || !bytes.Equal(got.Model, next.Model) {
			t.Fatalf("save succeeded but the latest is epoch %d step %d", got.Record.EpochsDone, got.Record.StepInEpoch)
		}
	default:
		if got.Record.StepInEpoch != 0 || !bytes.Equal(got.Model, prev.Model) {
			t.Fatalf("save failed but the latest is not the previous good checkpoint")
		}
	}
}

func corrupt(t *testing.T, path string, truncate bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:len(b)/3]
	} else {
		b[len(b)/2] ^= 0x10
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A bit flipped or a truncated object is detected, reported with its key,
// and the reader falls back to the previous good checkpoint.
func TestCorruptCheckpointFallsBackToPreviousGood(t *testing.T) {
	ctx := context.Background()
	for _, truncate := range []bool{false, true} {
		name := map[bool]string{false: "bit flip", true: "truncated"}[truncate]
		t.Run(name, func(t *testing.T) {
			srv, st := s3Repo(t)
			repo := checkpoint.Repo{Store: st, Prefix: "sweep"}
			good := fakeCheckpoint(2, 0, 4<<20, 3)
			bad := fakeCheckpoint(2, 30, 4<<20, 4)
			for _, c := range []*checkpoint.Checkpoint{good, bad} {
				if _, err := repo.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			// versitygw's posix backend keeps objects as files: damage one
			// behind the store's back.
			corrupt(t, modelFileOf(t, filepath.Join(srv.Dir, "ckpt", "runs", "sweep", "resnet", "resnet18", "224"), "mid_e0003_s000030"), truncate)
			got, problems, err := repo.LoadLatest(ctx, repo.Combo("resnet", "resnet18", 224))
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Key, "mid_e0003_s000030") || !errors.Is(problems[0].Err, checkpoint.ErrCorrupt) {
				t.Fatalf("problems %v, want the damaged checkpoint reported as corrupt", problems)
			}
			if got == nil || got.Record.EpochsDone != 2 || got.Record.StepInEpoch != 0 {
				t.Fatalf("fell back to %+v, want the epoch-2 checkpoint", got)
			}
		})
	}
}

// Retention never deletes the only good checkpoint: not when the newest is
// damaged, and not when the process died between a commit and its pruning.
func TestRetentionKeepsTheNewestGoodCheckpoint(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := checkpoint.Repo{Store: st}
	var seq uint64
	save := func(e, s int) {
		seq++
		if _, err := repo.Save(ctx, fakeCheckpoint(e, s, 4096, seq)); err != nil {
			t.Fatal(err)
		}
	}
	combo := repo.Combo("resnet", "resnet18", 224)
	dir := combo.Dir()
	for e := 1; e <= 4; e++ {
		save(e-1, 10)
		save(e-1, 20)
		save(e, 0)
	}
	// Died before pruning: everything is still there, nothing was lost.
	doomed, err := repo.Prunable(ctx, combo, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mid_e0004_s000010", "mid_e0003_s000020", "mid_e0003_s000010", "epoch_0002", "mid_e0002_s000020", "mid_e0002_s000010", "epoch_0001", "mid_e0001_s000020", "mid_e0001_s000010"}
	var got []string
	for _, d := range doomed.Checkpoints {
		got = append(got, d.Name.String())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("prunable %v\nwant      %v", got, want)
	}
	for _, d := range doomed.Checkpoints {
		if err := repo.DeleteCheckpoint(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if c, _, _ := repo.LoadLatest(ctx, combo); c == nil || c.Record.EpochsDone != 4 {
		t.Fatal("pruning lost the newest checkpoint")
	}

	// The newest two checkpoints rot: retention must keep the newest good
	// one (epoch 3) rather than count the damaged ones as kept.
	save(4, 10)
	fs := st.URL()[len("file://"):]
	corrupt(t, modelFileOf(t, filepath.Join(fs, dir), "mid_e0005_s000010"), false)
	corrupt(t, modelFileOf(t, filepath.Join(fs, dir), "epoch_0004"), true)
	doomed, err = repo.Prunable(ctx, combo, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(doomed.Checkpoints) != 0 {
		t.Fatalf("with only epoch_0003 good, retention wants to delete %v", doomed)
	}
	c, problems, _ := repo.LoadLatest(ctx, combo)
	if c == nil || c.Record.EpochsDone != 3 || len(problems) != 2 {
		t.Fatalf("latest good after rot: %+v, problems %v", c, problems)
	}
}

// A record whose sizes are damaged (a huge size) is corrupt: loading it
// allocates nothing of that size, and the newest good checkpoint is used.
func TestDamagedRecordSizeFallsBack(t *testing.T) {
	ctx := context.Background()
	repo, st := fileRepoWithEpoch1(t)
	key, err := repo.Save(ctx, fakeCheckpoint(2, 0, 4096, 2))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := store.ReadAll(ctx, st, key)
	rec, _ := checkpoint.UnmarshalRecord(b)
	rec.ModelFile.Size = 1 << 50
	b, _ = rec.Marshal()
	if err := st.Put(ctx, key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Load(ctx, key); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("loading a record that says 1 PB: %v, want ErrCorrupt", err)
	}
	c, problems, err := repo.LoadLatest(ctx, repo.Combo("resnet", "resnet18", 224))
	if err != nil || c == nil || c.Record.EpochsDone != 1 || len(problems) != 1 {
		t.Fatalf("latest good: %v %+v %v, want epoch 1 with one problem", err, c, problems)
	}
}

// Tensor files stored ahead of a record that was never committed (a worker
// died while the epoch validated) are orphans once a later checkpoint is
// good: retention lists and deletes them, and never the files of a
// position past the newest good checkpoint (an epoch committing now).
func TestRetentionDeletesOrphanedTensorFiles(t *testing.T) {
	ctx := context.Background()
	repo, st := fileRepoWithEpoch1(t)
	lost := fakeCheckpoint(2, 0, 4096, 2) // its worker died before the record
	if err := repo.SaveFiles(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Save(ctx, fakeCheckpoint(2, 0, 4096, 3)); err != nil { // the retry's
		t.Fatal(err)
	}
	committing := fakeCheckpoint(3, 0, 4096, 4) // validating now
	if err := repo.SaveFiles(ctx, committing); err != nil {
		t.Fatal(err)
	}
	combo := repo.Combo("resnet", "resnet18", 224)
	doomed, err := repo.Prunable(ctx, combo, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(doomed.Checkpoints) != 0 || len(doomed.Orphans) != 2 {
		t.Fatalf("doomed %+v: want the lost epoch 2's two tensor files only", doomed)
	}
	for _, k := range doomed.Orphans {
		if !strings.Contains(k, "/epoch_0002.") {
			t.Errorf("orphan %s is not the lost epoch 2's", k)
		}
	}
	if n, err := repo.Delete(ctx, doomed); err != nil || n != 2 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	for _, e := range []int{1, 2} {
		if _, err := repo.Load(ctx, repo.Ref(lost.Record, checkpoint.EpochName(e)).Key()); err != nil {
			t.Errorf("epoch %d after deleting orphans: %v", e, err)
		}
	}
	infos, _ := st.List(ctx, combo.Dir()+"/")
	var epoch3 int
	for _, in := range infos {
		if strings.Contains(in.Key, "/epoch_0003.") {
			epoch3++
		}
	}
	if epoch3 != 2 {
		t.Errorf("%d files of the epoch committing now left, want its 2", epoch3)
	}
}

// fileRepoWithEpoch1 is a repository on a fresh file store holding one
// checkpoint, after epoch 1.
func fileRepoWithEpoch1(t *testing.T) (checkpoint.Repo, store.Store) {
	t.Helper()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := checkpoint.Repo{Store: st, Prefix: "sweep"}
	if _, err := repo.Save(context.Background(), fakeCheckpoint(1, 0, 4096, 1)); err != nil {
		t.Fatal(err)
	}
	return repo, st
}
