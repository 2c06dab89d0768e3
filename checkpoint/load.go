package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Verify checks the checkpoint at recordKey without keeping its tensors:
// both files are streamed through SHA-256 (memory stays flat whatever the
// checkpoint's size).
func (r Repo) Verify(ctx context.Context, recordKey string) (Record, error) {
	ref, rec, err := r.record(ctx, recordKey)
	if err != nil {
		return Record{}, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
	}
	model, optim := ref.tensorFiles(rec)
	for _, f := range []struct {
		key  string
		want FileSum
	}{{model, rec.ModelFile}, {optim, rec.OptimFile}} {
		rc, err := r.Store.Get(ctx, f.key)
		if err != nil {
			return rec, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return rec, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
		}
		if n != f.want.Size || hex.EncodeToString(h.Sum(nil)) != f.want.SHA256 {
			return rec, fmt.Errorf("verify checkpoint %s: %w: %s has %d bytes or another SHA-256 than its record says", recordKey, ErrCorrupt, f.key, n)
		}
	}
	return rec, nil
}

// record parses recordKey and reads the record there.
func (r Repo) record(ctx context.Context, recordKey string) (Ref, Record, error) {
	ref, ok := ParseKey(recordKey)
	if !ok {
		return Ref{}, Record{}, errors.New("not a checkpoint record key")
	}
	rec, err := r.readRecord(ctx, recordKey)
	return ref, rec, err
}

// readSized reads an object the record says is size bytes into one buffer
// of that size (a large checkpoint is not grown by doubling); an object of
// another size is corrupt, and one that changes while read fails
// verification afterwards.
func (r Repo) readSized(ctx context.Context, key string, size int64) ([]byte, error) {
	// The record is checked against the object before anything is
	// allocated: a damaged record's size must not take the worker down.
	info, err := r.Store.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size != size {
		return nil, fmt.Errorf("%w: %s is %d bytes, its record says %d", ErrCorrupt, key, info.Size, size)
	}
	rc, err := r.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, max(size, 0)+1) // one more byte shows an object that is too long
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// Load reads and verifies the checkpoint whose record is at recordKey.
func (r Repo) Load(ctx context.Context, recordKey string) (*Checkpoint, error) {
	ref, rec, err := r.record(ctx, recordKey)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	c := &Checkpoint{Record: rec, Key: recordKey}
	model, optim := ref.tensorFiles(rec)
	if c.Model, err = r.readSized(ctx, model, rec.ModelFile.Size); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	if c.Optim, err = r.readSized(ctx, optim, rec.OptimFile.Size); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	return c, nil
}

// LoadWeights reads a checkpoint's record and model file only (what
// evaluating it needs), verified against the record.
func (r Repo) LoadWeights(ctx context.Context, recordKey string) (Record, []byte, error) {
	ref, rec, err := r.record(ctx, recordKey)
	if err != nil {
		return Record{}, nil, fmt.Errorf("load weights %s: %w", recordKey, err)
	}
	model, _ := ref.tensorFiles(rec)
	b, err := r.readSized(ctx, model, rec.ModelFile.Size)
	if err != nil {
		return Record{}, nil, fmt.Errorf("load weights %s: %w", recordKey, err)
	}
	if got := sum(b); got.SHA256 != rec.ModelFile.SHA256 {
		return Record{}, nil, fmt.Errorf("load weights %s: %w: model file SHA-256 %.12s, record says %.12s", recordKey, ErrCorrupt, got.SHA256, rec.ModelFile.SHA256)
	}
	return rec, b, nil
}

// Problem is a checkpoint that failed verification while looking for the
// latest good one.
type Problem struct {
	Key string
	Err error
}

// Records lists the resumable checkpoints (epoch and mid) in a
// combination's folder, newest training position first.
func (r Repo) Records(ctx context.Context, c Combo) ([]Ref, error) {
	infos, err := r.Store.List(ctx, c.Dir()+"/")
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, in := range infos {
		if ref, ok := ParseKey(in.Key); ok && ref.Name.Resumable() && ref.Combo.Dir() == c.Dir() {
			refs = append(refs, ref)
		}
	}
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].Name.After(refs[j].Name) })
	return refs, nil
}

// Newest is the record key of a combination's newest checkpoint ("" when
// there is none), read from the listing alone: a worker that holds that
// checkpoint's training in memory needs nothing more.
func (r Repo) Newest(ctx context.Context, c Combo) (string, error) {
	refs, err := r.Records(ctx, c)
	if err != nil || len(refs) == 0 {
		return "", err
	}
	return refs[0].Key(), nil
}

// LoadLatest returns the newest checkpoint of a combination that verifies
// (its Key says which), with every newer one that did not. (nil, problems,
// nil) means there is no good checkpoint: training starts from scratch only
// then. It scans records rather than trusting a pointer, so a crash
// between a record and a pointer's update loses nothing.
func (r Repo) LoadLatest(ctx context.Context, c Combo) (*Checkpoint, []Problem, error) {
	var latest *Checkpoint
	problems, err := r.firstGood(ctx, c, func(key string) (err error) {
		latest, err = r.Load(ctx, key)
		return err
	})
	return latest, problems, err
}

// VerifyLatest is LoadLatest without keeping the tensors: the record key
// ("" when none) and the record of the newest checkpoint that verifies.
func (r Repo) VerifyLatest(ctx context.Context, c Combo) (string, Record, []Problem, error) {
	var key string
	var rec Record
	problems, err := r.firstGood(ctx, c, func(k string) (err error) {
		if rec, err = r.Verify(ctx, k); err == nil {
			key = k
		}
		return err
	})
	return key, rec, problems, err
}

// firstGood tries c's checkpoints, newest first, until try accepts one.
func (r Repo) firstGood(ctx context.Context, c Combo, try func(key string) error) ([]Problem, error) {
	refs, err := r.Records(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", c.Dir(), err)
	}
	var problems []Problem
	for _, ref := range refs {
		err := try(ref.Key())
		if err == nil {
			return problems, nil
		}
		if ctx.Err() != nil {
			return problems, ctx.Err()
		}
		problems = append(problems, Problem{Key: ref.Key(), Err: err})
	}
	return problems, nil
}
