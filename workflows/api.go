// Package workflows holds ResoMap's Temporal workflows: Sweep starts one
// Combination child per (model, resolution); each Combination runs one
// TrainEpoch activity per epoch. Everything here is deterministic workflow
// code: no I/O, no wall clock, no native goroutines, no map-order decisions.
// api.go and activity_api.go are the contract with starters and workers.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/sweep"
)

// TaskQueue is the default task queue of workers and starters.
const TaskQueue = "resomap"

// Signal, query and update names, for code and the CLI
// (temporal workflow signal --name pause --workflow-id sweep-default).
const (
	SignalPause  = "pause"
	SignalResume = "resume"
	SignalCancel = "cancel"
	// SignalProgress carries a child's progress to its sweep.
	SignalProgress = "combination-progress"
	QueryProgress  = "progress"
	// Updates do what the signals do, but answer: a validator refuses
	// pausing a finished or already paused workflow.
	UpdatePause  = "pause-update"
	UpdateResume = "resume-update"
	UpdateCancel = "cancel-update"
)

// ErrTypeSweepFinished is the type of UpdateAdd's refusal of a sweep whose
// combinations have all ended: the client starts it again with the union
// (starter add does) once it has closed.
const ErrTypeSweepFinished = "SweepFinished"

// Search attributes shown and filterable in the Web UI, e.g.
// ResoMapModel="vgg11" AND ResoMapResolution=320.
var (
	AttrSweep      = temporal.NewSearchAttributeKeyKeyword("ResoMapSweep")
	AttrModel      = temporal.NewSearchAttributeKeyKeyword("ResoMapModel")
	AttrResolution = temporal.NewSearchAttributeKeyInt64("ResoMapResolution")
	AttrStatus     = temporal.NewSearchAttributeKeyKeyword("ResoMapStatus")
	AttrEpoch      = temporal.NewSearchAttributeKeyInt64("ResoMapEpoch")
	AttrBestValAcc = temporal.NewSearchAttributeKeyFloat64("ResoMapBestValAcc")
)

// SearchAttributes lists every attribute for registration; each key carries
// its name and type.
var SearchAttributes = []temporal.SearchAttributeKey{AttrSweep, AttrModel, AttrResolution, AttrStatus, AttrEpoch, AttrBestValAcc}

// SweepInput starts (or continues as new) a sweep.
type SweepInput struct {
	Spec sweep.Spec
	// Carry is the state handed over by continue-as-new.
	Carry *SweepCarry `json:",omitempty"`
}

// SweepCarry is the sweep's state across continue-as-new, bounded
// whatever the sweep's size (ledger.go): the running combinations'
// outcomes, the ended ones a ledger keeps, counts of the rest, and how the
// sweep grew (not the grown list).
type SweepCarry struct {
	Next      int
	Paused    bool
	Cancelled bool
	Runs      int
	Began     time.Time `json:",omitzero"` // when the first run started
	// Running are the combinations still running when the run ended; their
	// results come by their progress signals. Live are their outcomes, in
	// the same order.
	Running []int           `json:",omitempty"`
	Live    []sweep.Outcome `json:",omitempty"`
	Ledger  *ledgerCarry    `json:",omitempty"`
	Growth  *Growth         `json:",omitempty"`
	// Outcomes (every combination's) and Combos (the grown list) are how
	// runs before the ledger carried the state: still read. (The ledger
	// changed no command, so it needs no version marker: the carried form
	// says which it is.)
	Outcomes []sweep.Outcome     `json:",omitempty"`
	Combos   []sweep.Combination `json:",omitempty"`
}

// Growth is how a sweep grew (UpdateAdd): its spec before the first add
// and each add in turn. Its combinations are Base's and then, add by add,
// those each one added (Growth.Combinations): the order they train in.
type Growth struct {
	Base sweep.Spec
	Adds []AddInput
}

// SweepProgress answers the progress query and is the sweep's result. It
// is bounded whatever the sweep's size: Combos lists every combination of
// a sweep of at most ListAllUpTo; of a larger one, the running ones and
// the ended ones its ledger keeps (ledger.go), and Counts counts them all.
// Every ended training's outcome is in the store (results.Index.Outcomes).
type SweepProgress struct {
	Name      string
	Paused    bool
	Cancelled bool
	Done      bool
	Runs      int // continue-as-new generations
	Combos    []sweep.Outcome
	// Total is the number of combinations and Counts counts them by
	// status (both zero in results of sweeps before the ledger).
	Total  int                  `json:",omitempty"`
	Counts map[sweep.Status]int `json:",omitempty"`
	// Spec is the sweep's spec as it stands (grown by UpdateAdd). Order
	// gives its combinations in the order they train: those from Next on
	// have not started, and the last Unstarted were cancelled before they
	// started.
	Spec      *sweep.Spec `json:",omitempty"`
	Growth    *Growth     `json:",omitempty"`
	Next      int         `json:",omitempty"`
	Unstarted int         `json:",omitempty"`
	// Began is when the sweep's first run started (for an estimate of
	// when it ends).
	Began time.Time `json:",omitzero"`
	// Tracking says how the sweep's MLflow run stands once its trainings
	// have ended ("" when up to date or off).
	Tracking string `json:",omitempty"`
}

// Listed says whether Combos lists every combination of the sweep.
func (p SweepProgress) Listed() bool { return p.Total == 0 || len(p.Combos) == p.Total }

// CombinationInput starts one combination.
type CombinationInput struct {
	Spec        sweep.Spec
	Combination sweep.Combination
	Paused      bool // start paused (the sweep is paused)
	// Carry is the state handed over by continue-as-new.
	Carry *CombinationCarry `json:",omitempty"`
}

// CombinationCarry is a combination's state across continue-as-new.
type CombinationCarry struct {
	Outcome  sweep.Outcome // a summary: no per-epoch figures
	Prepared Prepared
	Started  time.Time
}

// EpochsPerRun bounds a Combination's history: it continues as new after
// this many epochs in one run (about 10 events and 3 KB of history each),
// or sooner when the server suggests it.
const EpochsPerRun = 100

// How often a combination waiting for another sweep's training of the same
// config looks again: from claimPollMin, doubling to claimPollMax.
const (
	claimPollMin = 5 * time.Second
	claimPollMax = 5 * time.Minute
)

// SweepID is the workflow ID a starter gives the sweep called name.
func SweepID(name string) string { return "sweep-" + name }

// ChildID is the workflow ID of a combination (model@resolution) of the
// sweep workflow sweepID.
func ChildID(sweepID, combination string) string { return sweepID + "/" + combination }
