package trainer

import (
	"context"
	"fmt"
	"time"

	"github.com/resomap/resomap/checkpoint"
)

// Checkpoints leave the critical path: a mid-epoch one is stored in the
// background while training goes on (at most one in flight; the next waits
// for it), an epoch's tensor files while validation runs. A checkpoint is
// committed (its record stored, OnCheckpoint returned) only after every
// earlier one, so a failed or killed upload never lets a later checkpoint
// commit on top of it. Time spent waiting on storage is CheckpointSeconds.

// upload is a checkpoint being stored in the background.
type upload struct {
	c    *checkpoint.Checkpoint // a mid-epoch one's record only
	done chan error
}

// start runs store(c) in the background.
func start(c *checkpoint.Checkpoint, store func(*checkpoint.Checkpoint) error) *upload {
	u := &upload{c: c, done: make(chan error, 1)}
	go func() { u.done <- store(c) }()
	return u
}

// snapshotAs copies the model and optimiser out of libtorch as a
// checkpoint of rec, not yet sealed: hashing its files (SHA-256 of 90 MB
// for resnet18 with momentum) is the storing goroutine's work, off the
// training's path.
func (r *run) snapshotAs(rec checkpoint.Record) (*checkpoint.Checkpoint, error) {
	// The checkpoint before is stored (the callers settle it first): let
	// its tensors go and hand their memory back before copying out the
	// next, or a worker holds two snapshots at once (2 GB for vgg11 with
	// momentum, on top of libtorch's 1 GB).
	size := r.res.Last.TensorBytes()
	r.res.Last = nil
	ReleaseMemory(size)
	rec.MicroBatch = r.micro
	rec.CreatedAt = time.Now().UTC()
	ms, os, err := snapshot(r.m, r.meta)
	if err != nil {
		return nil, err
	}
	return &checkpoint.Checkpoint{Record: rec, Model: ms, Optim: os}, nil
}

func (r *run) midRecord() checkpoint.Record {
	rec := r.rec
	rec.Kind = checkpoint.KindMid
	return rec
}

// emitMid starts storing a mid-epoch checkpoint once the one before it is
// stored.
func (r *run) emitMid(ctx context.Context) error {
	if err := r.settle(); err != nil {
		return err
	}
	t0 := time.Now()
	c, err := r.snapshotAs(r.midRecord())
	r.res.CheckpointSeconds += time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	store := context.WithoutCancel(ctx) // stored even if training stops now
	// Only the store goroutine holds the tensors, and hands their memory
	// back once they are stored: a vgg11 snapshot (1 GB) is not kept
	// through the steps until the next checkpoint.
	u := &upload{c: &checkpoint.Checkpoint{Record: c.Record}, done: make(chan error, 1)}
	go func(c *checkpoint.Checkpoint) {
		c.Seal()
		u.c.Record = c.Record // read by settle, after done
		err := r.opts.OnCheckpoint(store, c)
		size := c.TensorBytes()
		c = nil
		ReleaseMemory(size)
		u.done <- err
	}(c)
	r.inFlight = u
	return nil
}

// emitNow stores a mid-epoch checkpoint of where training stopped, after
// the one in flight.
func (r *run) emitNow(ctx context.Context) error {
	if err := r.settle(); err != nil {
		return err
	}
	t0 := time.Now()
	defer func() { r.res.CheckpointSeconds += time.Since(t0).Seconds() }()
	c, err := r.snapshotAs(r.midRecord())
	if err != nil {
		return err
	}
	c.Seal()
	if err := r.opts.OnCheckpoint(ctx, c); err != nil {
		return storeError(c, err)
	}
	r.res.Last = c
	return nil
}

// settle waits for the checkpoint in flight, if any.
func (r *run) settle() error {
	if r.inFlight == nil {
		return nil
	}
	t0 := time.Now()
	u := r.inFlight
	r.inFlight = nil
	err := <-u.done
	r.res.CheckpointSeconds += time.Since(t0).Seconds()
	if err != nil {
		return storeError(u.c, err)
	}
	r.res.Last = u.c
	return nil
}

// snapshotEpoch snapshots the finished epoch's tensors, named as its
// checkpoint, and starts storing their files (StoreFiles) after the
// checkpoint in flight.
func (r *run) snapshotEpoch(ctx context.Context) (*upload, error) {
	if err := r.settle(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	defer func() { r.res.CheckpointSeconds += time.Since(t0).Seconds() }()
	rec := r.rec
	rec.Kind, rec.EpochsDone, rec.StepInEpoch = checkpoint.KindEpoch, rec.EpochsDone+1, 0 // its name
	c, err := r.snapshotAs(rec)
	if err != nil {
		return nil, err
	}
	if r.opts.StoreFiles == nil {
		c.Seal()
		u := &upload{c: c, done: make(chan error, 1)}
		u.done <- nil
		return u, nil
	}
	return start(c, func(c *checkpoint.Checkpoint) error {
		c.Seal() // read by commitEpoch, after done
		return r.opts.StoreFiles(ctx, c)
	}), nil
}

// commitEpoch waits for the epoch's files and commits its record, now
// final.
func (r *run) commitEpoch(ctx context.Context, files *upload) error {
	t0 := time.Now()
	defer func() { r.res.CheckpointSeconds += time.Since(t0).Seconds() }()
	c := files.c
	if err := <-files.done; err != nil {
		return storeError(c, err)
	}
	rec := r.rec
	rec.Kind, rec.MicroBatch, rec.CreatedAt = checkpoint.KindEpoch, r.micro, c.Record.CreatedAt
	rec.Format, rec.ModelFile, rec.OptimFile = c.Record.Format, c.Record.ModelFile, c.Record.OptimFile
	c = &checkpoint.Checkpoint{Record: rec, Model: c.Model, Optim: c.Optim, FilesStored: r.opts.StoreFiles != nil}
	if err := r.opts.OnCheckpoint(ctx, c); err != nil {
		return storeError(c, err)
	}
	r.res.Last = c
	return nil
}

func storeError(c *checkpoint.Checkpoint, err error) error {
	rec := c.Record
	return fmt.Errorf("store checkpoint %s@%d epoch %d step %d: %w", rec.Model, rec.Resolution, rec.EpochsDone+1, rec.StepInEpoch, err)
}
