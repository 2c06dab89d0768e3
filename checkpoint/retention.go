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
func (r Repo) Prunable(ctx context.Context, c Combo, keep int) ([]Ref, error) {
	refs, err := r.Records(ctx, c)
	if err != nil {
		return nil, err
	}
	good := -1
	var best Name // the best epoch, which best_model refers to
	for i, ref := range refs {
		if rec, err := r.Verify(ctx, ref.Key()); err == nil {
			good, best = i, EpochName(rec.BestEpoch)
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if good < 0 {
		return nil, nil
	}
	var doomed []Ref
	mids, epochs := 0, 0
	for i := good; i < len(refs); i++ {
		switch n := refs[i].Name; {
		case n == best:
		case n.Kind == NameMid:
			mids++
			if i > good && mids > 1 {
				doomed = append(doomed, refs[i])
			}
		default:
			epochs++
			if i > good && epochs > keep {
				doomed = append(doomed, refs[i])
			}
		}
	}
	return doomed, nil
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
