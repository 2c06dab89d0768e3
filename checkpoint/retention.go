package checkpoint

import (
	"context"
	"fmt"
)

// KeepEpochs is how many per-epoch checkpoints retention keeps besides best
// and final.
const KeepEpochs = 3

// Prunable lists the checkpoints that retention may delete in a
// combination's folder. It first finds the newest checkpoint that verifies;
// only checkpoints older than that one are candidates, and of those it
// keeps the newest keep epoch checkpoints, the newest mid-epoch one and the
// best epoch (which best_model refers to until the combination is done and
// its copy is exported). best_model and final_model copies are never
// listed. So retention can never delete the only good checkpoint, whatever
// happened to the newer ones, nor the best weights.
//
// It also lists orphans: tensor files no record points at, of positions
// before the newest good checkpoint. An epoch's files are stored while it
// validates, and a worker that died before it committed the record leaves
// them behind. (Files of a newer position may be an epoch committing now:
// they are left alone.)
func (r Repo) Prunable(ctx context.Context, c Combo, keep int) (Doomed, error) {
	var d Doomed
	refs, err := r.Records(ctx, c)
	if err != nil {
		return d, err
	}
	good := -1
	var best Name // the best epoch, which best_model refers to
	for i, ref := range refs {
		if rec, err := r.Verify(ctx, ref.Key()); err == nil {
			good, best = i, EpochName(rec.BestEpoch)
			break
		}
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
	}
	if good < 0 {
		return d, nil
	}
	if d.Orphans, err = r.orphansBefore(ctx, c, refs[good].Name); err != nil {
		return d, err
	}
	mids, epochs := 0, 0
	for i := good; i < len(refs); i++ {
		switch n := refs[i].Name; {
		case n == best:
		case n.Kind == NameMid:
			mids++
			if i > good && mids > 1 {
				d.Checkpoints = append(d.Checkpoints, refs[i])
			}
		default:
			epochs++
			if i > good && epochs > keep {
				d.Checkpoints = append(d.Checkpoints, refs[i])
			}
		}
	}
	return d, nil
}

// Doomed is what retention may delete in a combination's folder.
type Doomed struct {
	Checkpoints []Ref
	Orphans     []string // tensor files no record points at
}

// Delete deletes what d lists, checkpoints record first; it says how many
// objects it deleted before any error.
func (r Repo) Delete(ctx context.Context, d Doomed) (int, error) {
	for i, ref := range d.Checkpoints {
		if err := r.DeleteCheckpoint(ctx, ref); err != nil {
			return i, err
		}
	}
	for i, k := range d.Orphans {
		if err := r.Store.Delete(ctx, k); err != nil {
			return len(d.Checkpoints) + i, fmt.Errorf("delete orphan %s: %w", k, err)
		}
	}
	return len(d.Checkpoints) + len(d.Orphans), nil
}

// orphansBefore lists content-named tensor files of positions not after
// newest whose record does not name them.
func (r Repo) orphansBefore(ctx context.Context, c Combo, newest Name) ([]string, error) {
	infos, err := r.Store.List(ctx, c.Dir()+"/")
	if err != nil {
		return nil, err
	}
	named := map[string]bool{} // tensor files some record names
	var candidates []string
	for _, in := range infos {
		if ref, ok := ParseKey(in.Key); ok && ref.Name.Resumable() {
			if rec, err := r.readRecord(ctx, in.Key); err == nil {
				m, o := ref.tensorFiles(rec)
				named[m], named[o] = true, true
			}
			continue
		}
		if ref, ok := parseTensorKey(in.Key); ok && ref.Name.Resumable() && !ref.Name.After(newest) && ref.Combo.Dir() == c.Dir() {
			candidates = append(candidates, in.Key)
		}
	}
	var orphans []string
	for _, k := range candidates {
		if !named[k] {
			orphans = append(orphans, k)
		}
	}
	return orphans, nil
}

// DeleteCheckpoint removes one checkpoint: its record first, so that it
// stops counting before its data goes.
func (r Repo) DeleteCheckpoint(ctx context.Context, ref Ref) error {
	model, optim := ref.plainFiles()
	keys := []string{ref.Key(), model, optim}
	if rec, err := r.readRecord(ctx, ref.Key()); err == nil {
		m, o := ref.tensorFiles(rec)
		keys = append(keys, m, o)
	}
	for _, k := range keys {
		if err := r.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete checkpoint %s: %w", ref.Key(), err)
		}
	}
	return nil
}
