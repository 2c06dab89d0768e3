package workflows

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

// addUpdate sends UpdateAdd at delay and records its answer.
type addUpdate struct {
	out      AddOutput
	err      error
	answered bool
}

func sendAdd(env *testsuite.TestWorkflowEnvironment, delay time.Duration, in AddInput) *addUpdate {
	u := &addUpdate{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateAdd, "add", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { u.err, u.answered = err, true },
			OnComplete: func(v any, err error) {
				u.answered, u.err = true, err
				if out, ok := v.(AddOutput); ok {
					u.out = out
				}
			},
		}, in)
	}, delay)
	return u
}

// A running sweep grows: the combinations added train after those it had,
// which are not disturbed (each epoch trained once), across continue-as-new,
// and the sweep ends when all have; the answer names what was added.
func TestAddToARunningSweep(t *testing.T) {
	for _, canAfter := range []int{1, 100} {
		env := newEnv(t)
		f := newFake()
		f.register(env, time.Minute)
		spec := testSpec(32, 48)
		spec.ContinueAsNewAfter = canAfter
		u := sendAdd(env, 90*time.Second, AddInput{Resolutions: []int{40, 48, 56}})
		if canAfter == 1 {
			runAcrossContinueAsNew(t, env, f, SweepInput{Spec: spec})
		} else {
			env.ExecuteWorkflow(Sweep, SweepInput{Spec: spec})
		}
		if !u.answered || u.err != nil {
			t.Fatalf("add answered %v: %v", u.answered, u.err)
		}
		want := "smallcnn@40 smallcnn@56"
		if canAfter == 100 && strings.Join(u.out.Added, " ") != want {
			t.Errorf("added %v, want %s", u.out.Added, want)
		}
		if canAfter == 100 {
			p := sweepResult(t, env)
			if len(p.Combos) != 4 {
				t.Fatalf("%d combinations after the add, want 4", len(p.Combos))
			}
			for _, o := range p.Combos {
				if o.Status != sweep.Completed || o.EpochsDone != 3 {
					t.Errorf("%s: %s with %d epochs", o.ID(), o.Status, o.EpochsDone)
				}
			}
		}
		trained := map[string]int{}
		for _, c := range f.calls {
			trained[sweep.TrainingID(c.Config.Model, c.Config.Resolution, 0)]++
		}
		for _, id := range []string{"smallcnn@32", "smallcnn@48", "smallcnn@40", "smallcnn@56"} {
			if trained[id] != 3 {
				t.Errorf("continue-as-new after %d: %s trained %d epochs, want 3 (once each)", canAfter, id, trained[id])
			}
		}
	}
}

// A sweep grown by seeds and a resolution continues as new carrying how it
// grew, not the grown list (which grows with the sweep): every run trains
// the same combinations in the same order, the result's Order is that
// order, and its counts cover every one.
func TestGrowthIsCarriedNotTheGrownList(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	spec := testSpec(32, 48)
	spec.ContinueAsNewAfter = 1
	u := sendAdd(env, 90*time.Second, AddInput{Resolutions: []int{40}, Seeds: []uint64{7}})
	var carries []*SweepCarry
	in := SweepInput{Spec: spec}
	for env.ExecuteWorkflow(Sweep, in); env.GetWorkflowError() != nil; env.ExecuteWorkflow(Sweep, in) {
		if len(carries) > 20 {
			t.Fatal("more than 20 runs")
		}
		in = continuedAs(t, env)
		carries = append(carries, in.Carry)
		endRunning(in.Carry)
		env = newEnv(t)
		f.register(env, time.Minute)
	}
	if !u.answered || u.err != nil {
		t.Fatalf("add answered %v: %v", u.answered, u.err)
	}
	p := sweepResult(t, env)
	var order []string
	for _, c := range p.Order() {
		order = append(order, c.ID())
	}
	want := []string{"smallcnn@32", "smallcnn@48", "smallcnn@32-seed7", "smallcnn@40-seed" + fmt.Sprint(spec.Seed), "smallcnn@40-seed7", "smallcnn@48-seed7"}
	if len(carries) < 3 {
		t.Fatalf("%d continue-as-new, want several", len(carries))
	}
	if !slices.Equal(slices.Sorted(slices.Values(order)), slices.Sorted(slices.Values(want))) || order[0] != want[0] || order[1] != want[1] {
		t.Errorf("order %v, want %v (the first two first)", order, want)
	}
	// (The fake keeps a training's epochs by resolution: another seed's is
	// found trained and skipped.)
	if p.Total != 6 || p.Counts[sweep.Completed]+p.Counts[sweep.Skipped] != 6 || len(p.Combos) != 6 {
		t.Errorf("total %d, counts %v, %d rows", p.Total, p.Counts, len(p.Combos))
	}
	grew := false
	for k, c := range carries {
		if c.Combos != nil || grew && c.Growth == nil {
			t.Errorf("run %d carried the grown list (%d) or lost how it grew", k+1, len(c.Combos))
		}
		grew = grew || c.Growth != nil
	}
	if !grew {
		t.Error("no run carried how the sweep grew")
	}
}

// runAcrossContinueAsNew runs a sweep that continues as new until it ends,
// the next run in a fresh environment sharing the fake's state (as a real
// server would), and delivers the add to the run it was sent to.
func runAcrossContinueAsNew(t *testing.T, env *testsuite.TestWorkflowEnvironment, f *fakeTraining, in SweepInput) {
	t.Helper()
	for range 20 {
		env.ExecuteWorkflow(Sweep, in)
		if !env.IsWorkflowCompleted() {
			t.Fatal("sweep did not end")
		}
		if env.GetWorkflowError() == nil {
			return
		}
		in = continuedAs(t, env)
		// Children of the ended run finished in it (the fake's children
		// do not outlive a test environment): mark them done.
		endRunning(in.Carry)
		env = newEnv(t)
		f.register(env, time.Minute)
	}
	t.Fatal("more than 20 runs")
}

// What makes no sense is refused with the messages a start gives, and a
// cancelled sweep takes nothing.
func TestAddRefusesWhatMakesNoSense(t *testing.T) {
	for _, tc := range []struct {
		in   AddInput
		want string
	}{
		{AddInput{Models: []string{"alexnet"}}, `unknown model "alexnet"`},
		{AddInput{Resolutions: []int{4}}, "resolution 4 out of range"},
		{AddInput{Resolutions: []int{16}}, "nothing to add"},
		{AddInput{}, "nothing to add"},
	} {
		env := newEnv(t)
		newFake().register(env, time.Minute)
		u := sendAdd(env, 30*time.Second, tc.in)
		env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16)})
		if !u.answered || u.err == nil || !strings.Contains(u.err.Error(), tc.want) {
			t.Errorf("add %+v: %v, want %q", tc.in, u.err, tc.want)
		}
	}
	env := newEnv(t)
	newFake().register(env, time.Minute)
	u := &addUpdate{}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCancel, nil)
		env.UpdateWorkflow(UpdateAdd, "add", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { u.err, u.answered = err, true },
			OnComplete: func(_ any, err error) { u.err, u.answered = err, true },
		}, AddInput{Resolutions: []int{24}})
	}, 20*time.Second)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: testSpec(16)})
	if !u.answered || u.err == nil || !strings.Contains(u.err.Error(), "cancelled") {
		t.Errorf("add to a cancelled sweep: answered %v, %v", u.answered, u.err)
	}
}

// Models, resolutions and seeds added: the combinations they make, in the
// order the sweep trains them, each training once.
func TestGrownCombinations(t *testing.T) {
	spec := testSpec(32, 48)
	grown, added, err := Grown(spec, AddInput{Models: []string{"resnet18", "smallcnn"}, Resolutions: []int{48, 40}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range added {
		ids = append(ids, c.ID())
	}
	if got := strings.Join(ids, " "); got != "smallcnn@40 resnet18@32 resnet18@40 resnet18@48" {
		t.Errorf("added %s", got)
	}
	if strings.Join(grown.Models, ",") != "smallcnn,resnet18" || len(grown.Resolutions) != 3 {
		t.Errorf("grown spec %v %v", grown.Models, grown.Resolutions)
	}
}

// Seeds added to a sweep without seeds: its own seed is the first, and
// the training it already has is not added again.
func TestGrownSeeds(t *testing.T) {
	spec := testSpec(16)
	spec.Seed = 7
	grown, added, err := Grown(spec, AddInput{Seeds: []uint64{7, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].Seed != 8 || len(grown.Seeds) != 2 || grown.Seeds[0] != 7 {
		t.Errorf("added %+v, seeds %v", added, grown.Seeds)
	}
}

// endRunning ends the children a continue-as-new carried as running, as
// if they had completed within the run that started them.
func endRunning(c *SweepCarry) {
	if c.Ledger == nil {
		c.Ledger = &ledgerCarry{}
	}
	if c.Ledger.Counts == nil {
		c.Ledger.Counts = map[sweep.Status]int{}
	}
	for k, i := range c.Running {
		o := c.Live[k]
		o.Status = sweep.Completed
		c.Ledger.Ended = append(c.Ledger.Ended, EndedOutcome{Index: i, Outcome: o})
		c.Ledger.Counts[sweep.Completed]++
	}
	c.Running, c.Live = nil, nil
}

// A sweep whose init asks torchvision for a TorchScript model's weights is
// refused as it starts, and such an add is refused by the update's
// validator; a carried run (started by earlier rules, which passed it to
// fail at Prepare) goes on as it was.
func TestTorchvisionWeightsOfAScriptAreRefusedAsNew(t *testing.T) {
	spec := testSpec(32)
	spec.Models, spec.Init.Weights = []string{"resnet18"}, sweep.Torchvision
	spec.Scripts = map[string]sweep.ScriptSettings{"net": {File: "/models/net.pt"}}
	const want = "torchvision has no weights of script:net"

	env := newEnv(t)
	newFake().register(env, time.Minute)
	u := sendAdd(env, 30*time.Second, AddInput{Models: []string{"script:net"}})
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: spec})
	if !u.answered || u.err == nil || !strings.Contains(u.err.Error(), want) {
		t.Errorf("add of script:net: answered %v, %v, want %q", u.answered, u.err, want)
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the sweep without it: %v", err)
	}

	withScript := spec
	withScript.Models = []string{"resnet18", "script:net"}
	env = newEnv(t)
	newFake().register(env, time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: withScript})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a new sweep with script:net: %v, want %q", err, want)
	}

	env = newEnv(t)
	newFake().register(env, time.Minute)
	env.ExecuteWorkflow(Sweep, SweepInput{Spec: withScript, Carry: &SweepCarry{Runs: 1}})
	if p := sweepResult(t, env); len(p.Combos) != 2 {
		t.Fatalf("a carried run: %+v, want both combinations run", p)
	}

	// A first run recorded before the change replays as it ran (no marker
	// in its history: the default version), and such a sweep may still
	// grow by resolutions; a model it brings meets today's rules.
	for _, tc := range []struct {
		add  AddInput
		want string
	}{{AddInput{Resolutions: []int{48}}, ""}, {AddInput{Models: []string{"script:other"}}, "torchvision has no weights of script:other"}} {
		env = newEnv(t)
		env.OnGetVersion(changeValidationRules2, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		newFake().register(env, time.Minute)
		legacy := withScript
		legacy.Scripts = map[string]sweep.ScriptSettings{"net": {File: "/models/net.pt"}, "other": {File: "/models/other.pt"}}
		u := sendAdd(env, 30*time.Second, tc.add)
		env.ExecuteWorkflow(Sweep, SweepInput{Spec: legacy})
		p := sweepResult(t, env)
		switch {
		case tc.want == "" && (u.err != nil || len(p.Combos) != 4):
			t.Errorf("a recorded first run grown by %+v: %v, %d combinations; want it run and grown to 4", tc.add, u.err, len(p.Combos))
		case tc.want != "" && (u.err == nil || !strings.Contains(u.err.Error(), tc.want)):
			t.Errorf("a recorded first run grown by %+v: %v, want %q", tc.add, u.err, tc.want)
		}
	}
}
