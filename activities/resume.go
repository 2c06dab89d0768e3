package activities

import (
	"context"

	"go.temporal.io/sdk/activity"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/workflows"
)

// combo is the checkpoint folder of a prepared combination.
func (a *Activities) combo(p workflows.Prepared) checkpoint.Combo {
	return a.repo(p.Prefix).Combo(p.Family, p.Config.Model, p.Config.Resolution)
}

// loadLatest returns the newest good checkpoint of a combination, logging
// every newer one that failed verification.
func (a *Activities) loadLatest(ctx context.Context, p workflows.Prepared) (*checkpoint.Checkpoint, error) {
	c, problems, err := a.repo(p.Prefix).LoadLatest(ctx, a.combo(p))
	a.logProblems(ctx, problems)
	return c, err
}

func (a *Activities) logProblems(ctx context.Context, problems []checkpoint.Problem) {
	for _, pr := range problems {
		activity.GetLogger(ctx).Warn("checkpoint failed verification, falling back", "key", pr.Key, "err", pr.Err)
	}
}

// FindResumePoint looks up the newest checkpoint that verifies. Partially
// trained combinations resume from it, across sweeps and terminated runs.
func (a *Activities) FindResumePoint(ctx context.Context, p workflows.Prepared) (workflows.ResumePoint, error) {
	key, r, problems, err := a.repo(p.Prefix).VerifyLatest(ctx, a.combo(p))
	a.logProblems(ctx, problems)
	if err != nil || key == "" {
		return workflows.ResumePoint{}, err
	}
	rp := workflows.ResumePoint{Key: key, Progress: r.Progress, Step: r.StepInEpoch, Numerics: r.Numerics}
	if r.BestEpoch > 0 {
		// A training whose epochs are all stored but whose result is not
		// is evaluated and exported from these (they heal it).
		rp.BestKey = a.repo(p.Prefix).Ref(r, checkpoint.EpochName(r.BestEpoch)).Key()
	}
	return rp, nil
}

// resumeFrom is the checkpoint an attempt continues from. The heartbeat
// names the newest checkpoint the server heard of; the store may hold a
// newer one whose heartbeat was still throttled when the worker died.
// Whichever is further along wins.
func (a *Activities) resumeFrom(ctx context.Context, p workflows.Prepared) (*checkpoint.Checkpoint, error) {
	from, err := a.loadLatest(ctx, p)
	if err != nil {
		return nil, err
	}
	var hb workflows.Heartbeat
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &hb) == nil && hb.Key != "" && !notNewer(hb.Key, from) {
		c, err := a.repo(p.Prefix).Load(ctx, hb.Key)
		switch {
		case err != nil:
			activity.GetLogger(ctx).Warn("heartbeat checkpoint unusable, using the newest good one", "key", hb.Key, "err", err)
		case from == nil || c.Record.After(from.Record):
			from = c
		}
	}
	return from, nil
}

// notNewer says, from its name alone, that the checkpoint at key is not
// newer than from (the same one, usually): loading it again would read and
// hash the same bytes twice (1 GB for vgg11 with momentum).
func notNewer(key string, from *checkpoint.Checkpoint) bool {
	if from == nil {
		return false
	}
	if key == from.Key {
		return true
	}
	ref, ok := checkpoint.ParseKey(key)
	return ok && !ref.Name.After(from.Record.Name())
}
