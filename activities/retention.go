package activities

import (
	"context"

	"github.com/resomap/resomap/checkpoint"
)

// prune applies retention after a newer checkpoint was committed: never
// before, so the newest good checkpoint always survives.
func (a *Activities) prune(ctx context.Context, repo checkpoint.Repo, committed checkpoint.Record) {
	dir := repo.DirOf(committed.Family, committed.Model, committed.Resolution)
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
