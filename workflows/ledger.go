package workflows

import (
	"slices"
	"strings"

	"github.com/resomap/resomap/sweep"
)

// A sweep's state must not grow with the sweep: its continue-as-new input,
// its query and update answers, its result and TrackSweep's input all
// cross Temporal (2 MB per payload), and every workflow task handles them.
// The store holds every training's outcome (RecordResult), the one source
// of truth for the report; the workflow keeps what steering and
// `starter status` need, in a ledger of bounded size.
const (
	// ListAllUpTo: a sweep of at most this many combinations keeps (and
	// shows) every ended one's outcome; a larger one keeps the latest
	// listLatest and the first listProblems that ended without a result,
	// and counts the others by status.
	ListAllUpTo  = 64
	listLatest   = 10
	listProblems = 20
	// listReason bounds a kept outcome's reason (the store has it whole).
	listReason = 1000
	// listBehind: the trainings whose MLflow run fell behind that are
	// named for the sweep's final catch-up; beyond them the catch-up reads
	// every outcome from the store.
	listBehind = 64
)

// EndedOutcome is a combination's final outcome and its place in the
// sweep's order of combinations.
type EndedOutcome struct {
	Index   int
	Outcome sweep.Outcome
}

// ledger is what the sweep keeps of its ended combinations.
type ledger struct {
	// counts are the ended combinations by status: every one, listed or not.
	counts map[sweep.Status]int
	// listed are ended outcomes in the order they ended: all of them in a
	// sweep of at most ListAllUpTo combinations, else trimmed.
	listed []EndedOutcome
	// behind are ended trainings whose MLflow run is behind (at most
	// listBehind; behindMore counts the rest); reached: some training's
	// run reached the tracking server.
	behind     []sweep.Outcome
	behindMore int
	reached    bool
	// unstarted: the last combinations were cancelled before they started
	// (none is recorded in the store).
	unstarted int
}

// ReasonUnstarted is the reason of a combination cancelled before it started.
const ReasonUnstarted = "sweep cancelled before it started"

func newLedger() *ledger { return &ledger{counts: map[sweep.Status]int{}} }

// add takes in combination i's final outcome; listAll says whether the
// sweep is small enough to keep every one.
func (l *ledger) add(i int, o sweep.Outcome, listAll bool) {
	l.counts[o.Status]++
	if len(o.Reason) > listReason {
		o.Reason = strings.ToValidUTF8(o.Reason[:listReason], "") + "…"
	}
	l.listed = append(l.listed, EndedOutcome{Index: i, Outcome: o})
	l.noteTracking(o)
	if !listAll && len(l.listed) > 2*listLatest+listProblems {
		l.trim()
	}
}

// replace puts o in place of combination i's listed outcome (a child's
// result that came after its last progress signal); one no longer listed
// stays counted as it was.
func (l *ledger) replace(i int, o sweep.Outcome) {
	k := slices.IndexFunc(l.listed, func(e EndedOutcome) bool { return e.Index == i })
	if k < 0 {
		return
	}
	l.counts[l.listed[k].Outcome.Status]--
	l.counts[o.Status]++
	l.listed[k].Outcome = o
	if b := l.behindAt(o.ID()); b >= 0 {
		l.behind = slices.Delete(l.behind, b, b+1)
	}
	l.noteTracking(o)
}

// behindAt is where the training named id is in behind (-1: not there).
func (l *ledger) behindAt(id string) int {
	return slices.IndexFunc(l.behind, func(b sweep.Outcome) bool { return b.ID() == id })
}

func (l *ledger) noteTracking(o sweep.Outcome) {
	if o.TrackingRun != "" {
		l.reached = true
	}
	if o.Tracking == "" || l.behindAt(o.ID()) >= 0 {
		return
	}
	if len(l.behind) < listBehind {
		l.behind = append(l.behind, o)
		return
	}
	l.behindMore++
}

// trim keeps the first listProblems outcomes that ended without a result
// and the latest listLatest.
func (l *ledger) trim() {
	var kept []EndedOutcome
	problems := 0
	for k, e := range l.listed {
		latest := k >= len(l.listed)-listLatest
		problem := !e.Outcome.Status.HasResult() && problems < listProblems
		if problem {
			problems++
		}
		if latest || problem {
			kept = append(kept, e)
		}
	}
	l.listed = kept
}

// caughtUp: the sweep's catch-up synced every training's run.
func (l *ledger) caughtUp() {
	l.behind, l.behindMore = nil, 0
	for k := range l.listed {
		l.listed[k].Outcome.Tracking = ""
	}
}

// ledgerCarry is a ledger as continue-as-new carries it.
type ledgerCarry struct {
	Ended      []EndedOutcome       `json:",omitempty"`
	Counts     map[sweep.Status]int `json:",omitempty"`
	Behind     []sweep.Outcome      `json:",omitempty"`
	BehindMore int                  `json:",omitempty"`
	Reached    bool                 `json:",omitempty"`
	Unstarted  int                  `json:",omitempty"`
}

func (l *ledger) carry() *ledgerCarry {
	return &ledgerCarry{Ended: l.listed, Counts: l.counts, Behind: l.behind, BehindMore: l.behindMore, Reached: l.reached,
		Unstarted: l.unstarted}
}

func ledgerFrom(c *ledgerCarry) *ledger {
	l := newLedger()
	if c == nil {
		return l
	}
	for s, n := range c.Counts {
		l.counts[s] = n
	}
	l.listed, l.behind, l.behindMore, l.reached, l.unstarted = c.Ended, c.Behind, c.BehindMore, c.Reached, c.Unstarted
	return l
}
