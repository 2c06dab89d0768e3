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

// Change IDs for workflow.GetVersion: histories recorded before a change
// replay the old way.
const (
	// changeSignalOnceStarted: the sweep signals a child only once its
	// start has completed, so a pause right after a start is not lost.
	changeSignalOnceStarted = "signal-children-once-started"
	// changeResumeBeforeStopped: an epoch stopped by a pause that was
	// resumed before the stop reported back runs again instead of failing.
	changeResumeBeforeStopped = "resume-before-stopped"
	// changeWaitForChildren: a cancelled sweep waits for its children.
	changeWaitForChildren = "wait-for-children-cancellation"
	// changeCombinationContinuesAsNew: a combination continues as new
	// every EpochsPerRun epochs.
	changeCombinationContinuesAsNew = "combination-continues-as-new"
	// changeContinueWithChildren: children outlive a run of the sweep
	// (abandon on close), so the sweep continues as new while they run.
	changeContinueWithChildren = "sweep-continues-with-children"
	// changeClaimTraining: one combination workflow trains a config at a
	// time; another sweep's waits and adopts its result.
	changeClaimTraining = "claim-training"
	// changeRelayInOrder: the sweep relays control commands to a child one
	// after the other, each once the one before it was delivered.
	changeRelayInOrder = "relay-control-in-order"
	// changeStickyEpochs: an epoch goes first to the task queue of the
	// worker that ran the epoch before (its model is resident there) and,
	// when that worker is gone or busy, to the shared queue.
	changeStickyEpochs = "sticky-epochs"
	// changeTestResolutions: a completed combination's best checkpoint is
	// evaluated at the sweep's test resolutions.
	changeTestResolutions = "test-resolutions"
	// changeProgressBySeed: a child's progress is matched to its
	// combination by model, resolution and seed (before: by model and
	// resolution, so one seed's figures landed on another's row).
	changeProgressBySeed = "progress-by-seed"
	// changeControlMeetsTimeout: a pause or cancel that meets an epoch
	// attempt ending in a timeout (its worker died) pauses or cancels, and
	// a paused or cancelled combination sends no epoch to another worker.
	changeControlMeetsTimeout = "control-meets-timeout"
	// changeReconcileChildren: the sweep asks the server how children of
	// earlier runs ended, so one that closed without reporting (terminated,
	// timed out, failed before its last signal) is recorded, and control
	// relays settle before the sweep continues as new.
	changeReconcileChildren = "reconcile-children"
	// changeTracking: trainings and the sweep are logged to an MLflow
	// tracking server (tracking.uri), and with tracking.skip_completed a
	// config the server shows FINISHED is skipped.
	changeTracking = "mlflow-tracking"
	// changeOOMKeepsIdentity: an out-of-memory error of a model with
	// BatchNorm ends the combination (before: its micro-batch was halved
	// under the config's unchanged name, which changes the result).
	changeOOMKeepsIdentity = "oom-keeps-identity"
	// changePatienceAtResume: a training found early-stopped when it
	// resumes (all its patience spent) trains no further epoch.
	changePatienceAtResume = "patience-at-resume"
	// changeHealResults: a result recorded without its best or final model
	// is trained on (resumed, evaluated, exported) and recorded again.
	changeHealResults = "heal-results"
	// changeCarryCosts: a training resumed from checkpoints of an earlier
	// run (a cancelled sweep, a terminated child, a result never
	// recorded) counts its earlier epochs' time and device seconds from
	// their figures, so its compute hours are the whole training's.
	changeCarryCosts = "carry-costs"
	// changeAdoptedTestSizes: a training adopted from another sweep (or
	// an earlier run of this one, before it grew) is evaluated at this
	// sweep's test resolutions its result lacks, so the train x test map
	// of a grown sweep has every row a clean sweep of it would.
	changeAdoptedTestSizes = "adopted-test-sizes"
	// changeDowntimeIsWaiting: an epoch whose worker was lost (a heartbeat
	// timeout on its worker's queue) counts the time since its last
	// heartbeat as waiting, not as the training's fixed cost.
	changeDowntimeIsWaiting = "downtime-is-waiting"
	// changePrepareHeartbeats: Prepare heartbeats (a download or a data
	// digest may outlast minutes; a stalled download is given up within
	// the heartbeat rules) and a pause or cancel stops it; the weights a
	// training started from are shown without credentials.
	changePrepareHeartbeats = "prepare-heartbeats"
	// changeStickyWaitIsWaiting: an epoch that waited for its worker's own
	// queue in vain (not taken within StickySeconds, or no slot there)
	// counts that time as waiting; before, it was the training's "other"
	// fixed cost (5 s on one epoch of make demo's sweep: 1.1 s per epoch).
	changeStickyWaitIsWaiting = "sticky-wait-is-waiting"
	// changeValidationRules2: a sweep is refused as it starts by today's
	// Spec.Validate where it differs from ValidateAsRecorded: init asking
	// torchvision for the weights of a model it has none of (a TorchScript
	// model; before, only smallcnn was refused, and the others'
	// combinations failed at Prepare), and test resolutions past
	// sweep.MaxResolution (before, up to 4096 passed, to be skipped).
	changeValidationRules2 = "validation-rules-2"
)

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
