package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/resomap/resomap/store"
)

// Export makes a verified copy of the checkpoint at recordKey under name
// (BestName or FinalName) in the same folder, with plain file names for
// people and PyTorch: best_model and final_model once a combination is
// done. The tensor files are copied by the store (a hard link on a file
// store, a server-side copy on S3), so a checkpoint's bytes are written
// once. The copy's record is written last and only if absent, so a copy is
// never torn; an export interrupted before it is completed again by the
// next call.
func (r Repo) Export(ctx context.Context, recordKey string, name Name) (string, error) {
	from, ok := ParseKey(recordKey)
	if !ok {
		return "", fmt.Errorf("export %s: not a checkpoint record key", recordKey)
	}
	rec, err := r.Verify(ctx, recordKey)
	if err != nil {
		return "", err
	}
	to := Ref{Combo: from.Combo, Name: name}
	if r.exported(ctx, to, rec) {
		return to.Key(), nil
	}
	out := rec
	out.ModelFile.Name, out.OptimFile.Name = "", ""
	b, err := out.Marshal()
	if err != nil {
		return "", err
	}
	// A copy there of another checkpoint (an older version's rolling copy)
	// or one that lost its data is replaced: uncommitted first.
	if err := r.Store.Delete(ctx, to.Key()); err != nil {
		return "", err
	}
	srcModel, srcOptim := from.tensorFiles(rec)
	dstModel, dstOptim := to.plainFiles()
	if err := store.Copy(ctx, r.Store, srcModel, dstModel); err != nil {
		return "", err
	}
	if err := store.Copy(ctx, r.Store, srcOptim, dstOptim); err != nil {
		return "", err
	}
	err = r.Store.PutIfAbsent(ctx, to.Key(), b)
	if errors.Is(err, store.ErrExists) && !r.exported(ctx, to, rec) {
		// Another export committed first: it must be the same checkpoint.
		return "", fmt.Errorf("export %s: %w: %s holds another checkpoint", recordKey, ErrCommitted, to.Key())
	}
	if err != nil && !errors.Is(err, store.ErrExists) {
		return "", err
	}
	return to.Key(), nil
}

// exported reports whether to already holds a copy of rec: its record
// names the same content and its files are there, whole.
func (r Repo) exported(ctx context.Context, to Ref, rec Record) bool {
	have, err := r.readRecord(ctx, to.Key())
	if err != nil || have.ModelFile.SHA256 != rec.ModelFile.SHA256 || have.OptimFile.SHA256 != rec.OptimFile.SHA256 {
		return false
	}
	model, optim := to.plainFiles()
	for key, size := range map[string]int64{model: rec.ModelFile.Size, optim: rec.OptimFile.Size} {
		if info, err := r.Store.Stat(ctx, key); err != nil || info.Size != size {
			return false
		}
	}
	return true
}
