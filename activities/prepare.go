package activities

import (
	"context"

	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// Prepare validates a combination and stamps its data set's content hash into
// its config, which names the training (skip rule, checkpoint namespace).
//
// It heartbeats (digesting a data folder or downloading weights can take
// long): a pause or cancel reaches it, and a download that stalls gives
// the attempt up within the heartbeat rules, saying why.
func (a *Activities) Prepare(ctx context.Context, in workflows.PrepareInput) (workflows.Prepared, error) {
	hb := newHeartbeater(ctx)
	defer hb.stop()
	ctx, done := hb.cancelOnStall(hb.watching(ctx))
	hb.setPhase("preparing")
	prep, err := a.prepare(ctx, in)
	return prep, done(err)
}

// prepare is Prepare's work, for activities that prepare a config again.
func (a *Activities) prepare(ctx context.Context, in workflows.PrepareInput) (workflows.Prepared, error) {
	cfg, err := a.Engine.Trainer.Prepare(ctx, in.Spec.Config(in.Combination))
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	h := cfg.Hash()
	if err := a.index().PutSpec(ctx, in.Spec); err != nil {
		return workflows.Prepared{}, err
	}
	id, err := a.Engine.Trainer.DataIdentity(cfg.Data) // memoised: Prepare just computed it
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	if err := a.index().PutDataIdentity(ctx, id); err != nil {
		return workflows.Prepared{}, err
	}
	native, err := a.Engine.Trainer.NativeSide(cfg.Data)
	if err != nil {
		return workflows.Prepared{}, classify(err)
	}
	if err := in.Spec.CheckUpsampling(cfg.Model, cfg.Resolution, native); err != nil {
		return workflows.Prepared{}, invalid(err)
	}
	return workflows.Prepared{Config: cfg, ConfigHash: h, Family: sweep.FamilyOf(cfg.Model), Prefix: results.RunsPrefix(h), NativeSide: native}, nil
}

// LookupResult returns the recorded result of a config (Found false if none).
func (a *Activities) LookupResult(ctx context.Context, configHash string) (workflows.LookupOutput, error) {
	o, sw, err := a.index().Lookup(ctx, configHash)
	if err != nil || o == nil {
		return workflows.LookupOutput{}, err
	}
	return workflows.LookupOutput{Found: true, Sweep: sw, Outcome: *o, Key: results.ResultKey(configHash)}, nil
}

// checkData makes sure this worker's copy of the data set is the one the
// combination was prepared with (engine.CheckData): a copy that differs is
// bad input.
func (a *Activities) checkData(ctx context.Context, cfg sweep.Config) error {
	return classify(a.Engine.CheckData(cfg, func() (engine.DataIdentity, error) { return a.index().DataIdentity(ctx, cfg.DataHash) }))
}
