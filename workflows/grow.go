package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// UpdateAdd grows a running sweep: models, resolutions or seeds are added
// to its grid, and the combinations that makes train after those it had.
// Any Temporal client can send it (temporal workflow update execute
// --name add-update --input '{"Resolutions":[64]}').
const UpdateAdd = "add-update"

// AddInput is what UpdateAdd adds (each list may be empty).
type AddInput struct {
	Models      []string `json:",omitempty"`
	Resolutions []int    `json:",omitempty"`
	Seeds       []uint64 `json:",omitempty"`
}

// AddOutput names the combinations added.
type AddOutput struct {
	Added []string
}

// Grown is the sweep spec with in's models, resolutions and seeds added
// (in order, each once), and the combinations that adds, in the order they
// train. A spec without seeds that is given some keeps its own seed as
// the first. What the add brings must pass today's Validate (addMeetsToday).
func Grown(spec sweep.Spec, in AddInput) (sweep.Spec, []sweep.Combination, error) {
	grown, added, err := regrown(spec, in)
	if err != nil {
		return grown, added, err
	}
	return grown, added, addMeetsToday(spec, grown)
}

// regrown is Grown as an add recorded earlier passed: the handler of an
// accepted add and the carried growth take it by the rules it was
// accepted under (a new add meets today's in the update's validator).
func regrown(spec sweep.Spec, in AddInput) (sweep.Spec, []sweep.Combination, error) {
	old := spec.Combinations()
	spec.Models = union(spec.Models, in.Models)
	spec.Resolutions = union(spec.Resolutions, in.Resolutions)
	if len(in.Seeds) > 0 {
		if len(spec.Seeds) == 0 {
			spec.Seeds = []uint64{spec.Seed}
		}
		spec.Seeds = union(spec.Seeds, in.Seeds)
	}
	if err := spec.ValidateAsRecorded(); err != nil {
		return spec, nil, err
	}
	had := map[sweep.Combination]bool{}
	for _, o := range old {
		had[training(o, spec.Seed)] = true
	}
	var added []sweep.Combination
	for _, c := range spec.Combinations() {
		if !had[training(c, spec.Seed)] {
			added = append(added, c)
		}
	}
	if len(added) == 0 {
		return spec, nil, fmt.Errorf("%w: nothing to add: every combination asked for is in sweep %s", sweep.ErrInvalid, spec.Name)
	}
	return spec, added, nil
}

// training names the training a combination is: one of a sweep without
// seeds (seed 0) trains with the spec's seed, so it is the same training
// as that seed listed.
func training(c sweep.Combination, specSeed uint64) sweep.Combination {
	if c.Seed == 0 {
		c.Seed = specSeed
	}
	return c
}

func union[T comparable](have, add []T) []T {
	out := slices.Clone(have)
	for _, v := range add {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// listenForAdd answers UpdateAdd: refused while the sweep is cancelled or
// finishing (starter add then starts it again with the union), and for
// what makes no sense (an unknown model, nothing new), with the messages
// a start gives.
func (s *sweepRun) listenForAdd(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateAdd, func(ctx workflow.Context, in AddInput) (AddOutput, error) {
		spec, added, err := s.canAdd(in, regrown)
		if err != nil {
			return AddOutput{}, err
		}
		s.grow(spec, in, added)
		var out AddOutput
		for _, c := range added {
			out.Added = append(out.Added, c.ID())
		}
		workflow.GetLogger(ctx).Info("sweep grew", "sweep", s.spec.Name, "added", out.Added)
		return out, nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in AddInput) error {
		_, _, err := s.canAdd(in, Grown)
		if err != nil && s.finishing { // typed, so a client need not read the words
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeSweepFinished, nil)
		}
		return err
	}})
}

func (s *sweepRun) canAdd(in AddInput, grown func(sweep.Spec, AddInput) (sweep.Spec, []sweep.Combination, error)) (sweep.Spec, []sweep.Combination, error) {
	switch {
	case s.finishing:
		return s.spec, nil, fmt.Errorf("sweep %s has finished: start it again with the added combinations (starter add does)", s.spec.Name)
	case s.ctl.cancelled:
		return s.spec, nil, fmt.Errorf("sweep %s is cancelled: nothing can be added", s.spec.Name)
	}
	return grown(s.spec, in)
}

// grow appends combinations to the sweep: they start after every one it
// had, each as pending. Continue-as-new carries how it grew (the spec
// before and each add), so their order is kept and the carried state
// does not grow with them.
func (s *sweepRun) grow(spec sweep.Spec, in AddInput, added []sweep.Combination) {
	if !s.legacyCombos {
		if s.growth == nil {
			s.growth = &Growth{Base: s.spec}
		}
		s.growth.Adds = append(s.growth.Adds, in)
	}
	s.spec = spec
	s.combos = append(s.combos, added...)
	s.events++
}
