package activities

import (
	"context"
	"time"

	"github.com/resomap/resomap/checkpoint"
)

// pruneAfter applies retention in the background after a newer checkpoint
// was committed (never before, so the newest good checkpoint always
// survives): it verifies that checkpoint by reading it back, which is
// housekeeping, not the epoch's work. One pass per combination at a time;
// a commit during a pass leaves its leftovers to the next.
func (a *Activities) pruneAfter(repo checkpoint.Repo, committed checkpoint.Record, key string) {
	combo := repo.Combo(committed.Family, committed.Model, committed.Resolution)
	if _, busy := a.pruning.LoadOrStore(combo.Dir(), key); busy {
		return
	}
	go func() {
		defer a.pruning.Delete(combo.Dir())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		a.prune(ctx, repo, combo)
	}()
}

// prune deletes what retention allows in a combination's folder.
func (a *Activities) prune(ctx context.Context, repo checkpoint.Repo, combo checkpoint.Combo) {
	doomed, err := repo.Prunable(ctx, combo, checkpoint.KeepEpochs)
	if err != nil {
		a.Logger.Warn("retention: list failed", "dir", combo.Dir(), "err", err)
		return
	}
	if _, err := repo.Delete(ctx, doomed); err != nil {
		a.Logger.Warn("retention: delete failed", "dir", combo.Dir(), "err", err)
	}
}
