package workflows

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// Any sequence of ended and replaced outcomes leaves a large sweep's
// ledger with exact counts, the latest listLatest outcomes, the first
// listProblems that ended without a result, and at most listBehind
// trainings named as behind (the rest counted), within a bounded size.
func TestLedgerKeepsWhatItPromises(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	statuses := []sweep.Status{sweep.Completed, sweep.Completed, sweep.Skipped, sweep.Failed, sweep.Cancelled, sweep.Terminated}
	for round := range 200 {
		l := newLedger()
		counts := map[sweep.Status]int{}
		var order []EndedOutcome // every add, as the oracle keeps it
		behind := 0
		n := rng.IntN(3000)
		for i := range n {
			o := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 8 + i}, Status: statuses[rng.IntN(len(statuses))]}
			if rng.IntN(10) == 0 {
				o.Tracking = "behind: down"
				behind++
			}
			l.add(i, o, false)
			counts[o.Status]++
			order = append(order, EndedOutcome{i, o})
			if len(l.listed) > 2*listLatest+listProblems {
				t.Fatalf("seed %d round %d: %d listed", seed, round, len(l.listed))
			}
		}
		l.trim()
		for s, c := range counts {
			if l.counts[s] != c {
				t.Fatalf("seed %d round %d: %s counted %d, want %d", seed, round, s, l.counts[s], c)
			}
		}
		var want []int
		problems := 0
		for k, e := range order {
			problem := !e.Outcome.Status.HasResult() && problems < listProblems
			if problem {
				problems++
			}
			if problem || k >= len(order)-listLatest {
				want = append(want, e.Index)
			}
		}
		var got []int
		for _, e := range l.listed {
			got = append(got, e.Index)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d round %d: listed %v, want %v", seed, round, got, want)
		}
		if len(l.behind) != min(behind, listBehind) || len(l.behind)+l.behindMore != behind {
			t.Fatalf("seed %d round %d: %d behind named, %d more; want %d in all", seed, round, len(l.behind), l.behindMore, behind)
		}
	}
}

// A small sweep's ledger lists every ended outcome; a replaced one moves
// its count.
func TestLedgerOfASmallSweepListsEveryOne(t *testing.T) {
	l := newLedger()
	for i := range ListAllUpTo {
		l.add(i, sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 8 + i}, Status: sweep.Failed, Reason: fmt.Sprint(i)}, true)
	}
	l.replace(3, sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 11}, Status: sweep.Completed})
	if len(l.listed) != ListAllUpTo || l.counts[sweep.Failed] != ListAllUpTo-1 || l.counts[sweep.Completed] != 1 ||
		l.listed[3].Outcome.Status != sweep.Completed {
		t.Errorf("listed %d, counts %v", len(l.listed), l.counts)
	}
}

// A state carried before the ledger is taken over: an outcome shown on a
// combination that had not started (a sibling seed's signal, before
// progress-by-seed) is not counted as ended, so the counts add up to the
// combinations when every one has ended.
func TestLegacyCarryIsTakenOver(t *testing.T) {
	env := newEnv(t)
	f := newFake()
	f.register(env, time.Minute)
	env.OnActivity(a.DescribeChildren, mockAny, mockAny).Return(ChildrenOutput{}, nil)
	spec := testSpec(16, 24, 32)
	ghost := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 32}, Epochs: 3, Status: sweep.Completed}
	in := SweepInput{Spec: spec, Carry: &SweepCarry{Next: 1, Runs: 1, Running: []int{0}, Outcomes: []sweep.Outcome{
		{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16}, Epochs: 3, Status: sweep.Running},
		{Identity: sweep.Identity{Model: "smallcnn", Resolution: 24}, Epochs: 3, Status: sweep.Pending},
		ghost,
	}}}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalProgress, sweep.Outcome{
			Identity: sweep.Identity{Model: "smallcnn", Resolution: 16},
			Epochs:   3, Status: sweep.Completed, Progress: sweep.Progress{EpochsDone: 3},
		})
	}, time.Minute)
	env.ExecuteWorkflow(Sweep, in)
	p := sweepResult(t, env)
	ended := 0
	for _, n := range p.Counts {
		ended += n
	}
	if p.Total != 3 || ended != 3 || len(p.Combos) != 3 {
		t.Errorf("total %d, counts %v (%d), %d rows", p.Total, p.Counts, ended, len(p.Combos))
	}
}
