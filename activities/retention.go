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
	dir := repo.DirOf(committed.Family, committed.Model, committed.Resolution)
	if _, busy := a.pruning.LoadOrStore(dir, key); busy {
		return
	}
	go func() {
		defer a.pruning.Delete(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		a.prune(ctx, repo, dir)
	}()
}

// prune deletes what retention allows in dir.
func (a *Activities) prune(ctx context.Context, repo checkpoint.Repo, dir string) {
	doomed, err := repo.Prunable(ctx, dir, checkpoint.KeepEpochs)
	if err != nil {
		a.Logger.Warn("retention: list failed", "dir", dir, "err", err)
		return
	}
	for _, base := range doomed {
		if err := repo.DeleteCheckpoint(ctx, base); err != nil {
			a.Logger.Warn("retention: delete failed", "checkpoint", base, "err", err)
		}
	}
}
