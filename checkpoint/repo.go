package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/resomap/resomap/store"
)

// Repo stores checkpoints of many combinations under Prefix, one folder per
// combination in the user's layout {family}/{model}/{resolution} (layout.go).
// This file commits checkpoints; load.go reads them, export.go copies them
// for people, retention.go deletes the old ones.
type Repo struct {
	Store  store.Store
	Prefix string // e.g. "runs/<config-namespace>"; may be empty
}

// Combo is the folder of one combination in r.
func (r Repo) Combo(family, model string, resolution int) Combo {
	return Combo{Prefix: r.Prefix, Family: family, Model: model, Resolution: resolution}
}

// Ref is where checkpoint n of rec's combination is stored in r.
func (r Repo) Ref(rec Record, n Name) Ref {
	return Ref{Combo: r.Combo(rec.Family, rec.Model, rec.Resolution), Name: n}
}

// ErrCommitted: another attempt committed a different checkpoint under the
// same name first. This attempt's work is discarded; a retry continues from
// the committed one.
var ErrCommitted = errors.New("another attempt committed this checkpoint first")

// Save commits c under its name. Tensor files are named by their content
// (so no write can change a file a record points at), then the record is
// created only if absent: each checkpoint is committed once, and a
// checkpoint can never be torn. Saving the same checkpoint again is a
// no-op; a different one under a committed name is ErrCommitted, and its
// files are removed. It returns the record's key, which the activity
// heartbeats.
func (r Repo) Save(ctx context.Context, c *Checkpoint) (string, error) {
	ref := r.Ref(c.Record, c.Record.Name())
	rec := ref.withContentNames(c.Record)
	b, err := rec.Marshal()
	if err != nil {
		return "", err
	}
	if !c.FilesStored {
		if err := r.SaveFiles(ctx, c); err != nil {
			return "", err
		}
	}
	err = r.Store.PutIfAbsent(ctx, ref.Key(), b)
	if errors.Is(err, store.ErrExists) {
		return ref.Key(), r.lostCommit(ctx, ref, rec)
	}
	return ref.Key(), err
}

// SaveFiles stores c's tensor files, named by content, without committing
// c: an epoch's are stored while its validation runs, and Save commits the
// record (with FilesStored) once it is final.
func (r Repo) SaveFiles(ctx context.Context, c *Checkpoint) error {
	ref := r.Ref(c.Record, c.Record.Name())
	model, optim := ref.tensorFiles(ref.withContentNames(c.Record))
	for _, f := range []struct {
		key  string
		data []byte
	}{{model, c.Model}, {optim, c.Optim}} {
		if err := r.Store.Put(ctx, f.key, bytes.NewReader(f.data)); err != nil {
			return err
		}
	}
	return nil
}

// lostCommit handles a record that already existed: the same checkpoint
// (a retried save) is fine; another one wins, and ours is removed.
func (r Repo) lostCommit(ctx context.Context, ref Ref, ours Record) error {
	theirs, err := r.readRecord(ctx, ref.Key())
	if err != nil {
		return fmt.Errorf("commit %s: %w", ref.Key(), err)
	}
	if theirs.ModelFile.SHA256 == ours.ModelFile.SHA256 && theirs.OptimFile.SHA256 == ours.OptimFile.SHA256 {
		return nil
	}
	ourModel, ourOptim := ref.tensorFiles(ours)
	theirModel, theirOptim := ref.tensorFiles(theirs)
	for _, k := range []string{ourModel, ourOptim} {
		if k != theirModel && k != theirOptim {
			_ = r.Store.Delete(ctx, k)
		}
	}
	return fmt.Errorf("%s: %w", ref.Key(), ErrCommitted)
}

func (r Repo) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := r.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (r Repo) readRecord(ctx context.Context, key string) (Record, error) {
	b, err := r.read(ctx, key)
	if err != nil {
		return Record{}, err
	}
	return UnmarshalRecord(b)
}
