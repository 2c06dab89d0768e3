package workflows

// The workflows' compatibility layer: what lets histories recorded by
// earlier versions replay, and their carried state be read, while the
// main paths take today's way.
//
// Floor: every history in testdata/ (v1, the first recorded default
// sweep, to v7) replays against this code (TestReplayRecordedHistories);
// sweeps started by any version since v1 go on after an upgrade.
//
// Retiring a change: once no sweep or combination started before it can
// still be running (or be reset and replayed), delete its since() branches
// keeping the newer path, delete its ID below, and delete the recorded
// histories older than it from testdata/ and the replay test; raise the
// floor above. The carried-state readers (takeCarry's Combos, a ledger's
// old form) and ValidateAsRecorded retire the same way.

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/resomap/resomap/sweep"
)

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

// since says whether this run takes the path of change: a run that
// started after the change did, and a recorded history replays the way it
// was recorded (workflow.GetVersion with one version after the default).
func since(ctx workflow.Context, change string) bool {
	return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) == 1
}

// validSpec holds a sweep's first run to today's Validate and a carried
// one to the rules it started under (ValidateAsRecorded). Recorded first
// runs that only today's rules refuse replay as they ran.
func validSpec(ctx workflow.Context, in SweepInput) error {
	if err := in.Spec.ValidateAsRecorded(); err != nil || in.Carry != nil {
		return err
	}
	// Asked only where the two differ, so no other history gains a marker.
	if err := in.Spec.Validate(); err != nil && since(ctx, changeValidationRules2) {
		return err
	}
	return nil
}

// addMeetsToday holds what an add brings to today's Validate. A sweep that
// started under earlier rules (a TorchScript model with init torchvision)
// keeps them for the models it had: its adds of resolutions or seeds are
// not refused for what it already was.
func addMeetsToday(had, grown sweep.Spec) error {
	if had.Validate() == nil {
		return grown.Validate()
	}
	brought := grown
	brought.Models = nil
	for _, m := range grown.Models {
		if !slices.Contains(had.Models, m) {
			brought.Models = append(brought.Models, m)
		}
	}
	if len(brought.Models) == 0 {
		return nil
	}
	return brought.Validate()
}
