package workflows

import (
	"context"
	"encoding/json"
	"time"

	"github.com/resomap/resomap/sweep"
)

// ActivityAPI is every activity the workflows run, with its exact
// signature. activities.Activities implements it (asserted there), and so
// does the workflow tests' stub: an activity whose signature changes on one
// side without the other fails to compile.
type ActivityAPI interface {
	Prepare(context.Context, PrepareInput) (Prepared, error)
	LookupResult(ctx context.Context, configHash string) (LookupOutput, error)
	FindResumePoint(context.Context, Prepared) (ResumePoint, error)
	TrainEpoch(context.Context, TrainEpochInput) (TrainEpochOutput, error)
	EvaluateAtResolutions(context.Context, EvaluateInput) (EvaluateOutput, error)
	ClaimTraining(context.Context, ClaimInput) (ClaimOutput, error)
	RecordResult(context.Context, RecordInput) (RecordOutput, error)
	DescribeChildren(context.Context, ChildrenInput) (ChildrenOutput, error)
	TrackTraining(context.Context, TrackInput) (TrackOutput, error)
	TrackSweep(context.Context, TrackSweepInput) (TrackOutput, error)
	FindTracked(context.Context, FindTrackedInput) (LookupOutput, error)
}

// The activities the workflows run, by name: the methods of ActivityAPI,
// which workers register. Workflows name them rather than import their
// implementation, so workflow code links no native library; a test checks
// that each name is a method of ActivityAPI.
const (
	ActivityPrepare          = "Prepare"
	ActivityLookupResult     = "LookupResult"
	ActivityFindResumePoint  = "FindResumePoint"
	ActivityTrainEpoch       = "TrainEpoch"
	ActivityRecordResult     = "RecordResult"
	ActivityClaimTraining    = "ClaimTraining"
	ActivityEvaluateAt       = "EvaluateAtResolutions"
	ActivityDescribeChildren = "DescribeChildren"
	ActivityTrackTraining    = "TrackTraining"
	ActivityTrackSweep       = "TrackSweep"
	ActivityFindTracked      = "FindTracked"
)

// Error types the workflows act on.
const (
	ErrTypeInvalidInput = "InvalidInput" // never retried
	ErrTypeOutOfMemory  = "OutOfMemory"  // retried by the workflow with half the micro-batch
	// ErrTypeWorkerBusy: an epoch sent to its worker's own queue found the
	// worker's training slots taken; the workflow sends it to the shared
	// queue at once.
	ErrTypeWorkerBusy = "WorkerBusy"
	// ErrTypeTracking: the tracking server refused in a way no retry
	// mends (bad credentials, a deleted experiment, a wrong URI); the
	// training goes on, and the next sync tries again.
	ErrTypeTracking = "Tracking"
)

// PrepareInput names one combination of a sweep.
type PrepareInput struct {
	Spec        sweep.Spec
	Combination sweep.Combination
}

// Prepared is a combination's full training config and where it lives,
// computed once per combination.
type Prepared struct {
	Config     sweep.Config
	ConfigHash string
	Family     string
	Prefix     string // checkpoint namespace
	NativeSide int    `json:",omitempty"` // the data's image size (0: unknown)
}

// LookupOutput is the recorded result of a config (Found false if none).
type LookupOutput struct {
	Found   bool
	Sweep   string
	Outcome sweep.Outcome
	// Key is where the result is stored ("" in histories recorded before
	// it was returned): the workflow names it without knowing the layout.
	Key string `json:",omitempty"`
}

// ResumePoint is where a combination's training stands in the store.
type ResumePoint struct {
	Key string // record key of the newest good checkpoint ("" = none)
	sweep.Progress
	Step int // steps done in epoch EpochsDone+1
	// BestKey is the record key of the best epoch's checkpoint ("" before
	// any epoch, and in histories recorded before it was returned).
	BestKey string `json:",omitempty"`
	// Numerics are the fingerprints its stored steps ran under.
	Numerics []string `json:",omitempty"`
}

// UnmarshalJSON also reads the shape recorded in histories before
// Progress was embedded (Go field names), so those histories replay.
func (p *ResumePoint) UnmarshalJSON(b []byte) error {
	type plain ResumePoint
	var v struct {
		plain
		EpochsDone  *int                 `json:"EpochsDone"`
		Metrics     []sweep.EpochMetrics `json:"Metrics"`
		BestEpoch   int                  `json:"BestEpoch"`
		BestValLoss float64              `json:"BestValLoss"`
		BestValAcc  float64              `json:"BestValAcc"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = ResumePoint(v.plain)
	if v.EpochsDone != nil {
		p.Progress = sweep.Progress{EpochsDone: *v.EpochsDone, Metrics: v.Metrics,
			BestEpoch: v.BestEpoch, BestValLoss: v.BestValLoss, BestValAcc: v.BestValAcc}
	}
	return nil
}

// TrainEpochInput asks for training until Epoch epochs are done.
type TrainEpochInput struct {
	Prepared
	Epoch             int // 1-based epoch to finish
	MicroBatch        int
	CheckpointSteps   int
	CheckpointSeconds int
}

// Heartbeat is what TrainEpoch heartbeats through all its phases: the key
// of its latest stored checkpoint, from which a retried attempt continues,
// what it is doing and the steps done (shown by starter status and the
// Web UI's pending activity).
type Heartbeat struct {
	Key   string `json:"key"`
	Phase string `json:"phase,omitempty"`
	Done  int    `json:"done"` // steps of the epoch done now
	Of    int    `json:"of"`
	// At is when the attempt sent it (its worker's clock): a retry counts
	// the time since its predecessor's last sign of life as waiting (a
	// lost worker, the stack's downtime), not as its fixed cost.
	At time.Time `json:"at,omitzero"`
}

// The phases of a TrainEpoch attempt.
const (
	PhaseCheckingData      = "checking data"
	PhaseLoadingCheckpoint = "loading checkpoint"
	PhaseWaitingForSlot    = "waiting for a training slot"
	// PhaseFetchingWeights: a fine-tuning's pretrained weights are being
	// downloaded (before a slot is taken) or checked.
	PhaseFetchingWeights = "fetching weights"
	// PhaseStalled starts the phase of an attempt that gave up on a hung
	// store or data folder, followed by why.
	PhaseStalled = "stalled: "
)

// TrainEpochOutput is one finished epoch.
type TrainEpochOutput struct {
	Key      string // record key of the epoch checkpoint
	BestKey  string
	FinalKey string
	// Progress after the epoch ("Record" in histories: it was the record).
	Progress          sweep.Progress `json:"Record"`
	ResumedFrom       sweep.Resume   // where this attempt started
	Attempt           int32
	TrainSeconds      float64 // training steps
	EvalSeconds       float64 // validation
	CheckpointSeconds float64 // snapshot + store
	WallSeconds       float64 // the whole activity
	Device            string
	// Numerics are the fingerprints of the arithmetic the training's steps
	// so far ran under (its checkpoint record's, sweep.Numerics.String):
	// an attempt cut off on one worker and resumed on another lists both.
	Numerics []string `json:",omitempty"`
	// RestoreSeconds: finding, loading and restoring the checkpoint, opening
	// the data and building the model; near 0 when Resident (the worker
	// held the training in memory since the epoch before).
	RestoreSeconds float64 `json:",omitempty"`
	Resident       bool    `json:",omitempty"`
	// CacheBuildSeconds: building the data cache, which was cold, when the
	// session opened (apart from RestoreSeconds).
	CacheBuildSeconds float64 `json:",omitempty"`
	// WaitSeconds: scheduled but not running, waiting for a worker to
	// take the epoch and for a training slot on it.
	WaitSeconds float64 `json:",omitempty"`
	// DeviceSeconds is this training's own share of the device over its
	// training and validation (on a CPU by the process's CPU time over the
	// cores, so a training that leaves cores idle uses less than its wall
	// time); SharedDevice: other trainings or data cache builds ran on the
	// same worker meanwhile.
	DeviceSeconds float64 `json:",omitempty"`
	SharedDevice  bool    `json:",omitempty"`
	// HostOthers is the share of the host's CPU capacity that other
	// processes (other workers' containers, a neighbour VM's steal) used
	// while the epoch trained on a CPU: its time figures were measured on
	// a shared host.
	HostOthers float64 `json:",omitempty"`
	// WorkerQueue is the task queue of the worker that ran the epoch, which
	// holds its model now: the next epoch is sent there first.
	WorkerQueue string `json:",omitempty"`
}

// EvaluateInput asks for a completed training's best checkpoint to be
// evaluated at test resolutions.
type EvaluateInput struct {
	Prepared
	BestKey         string
	Resolutions     []int
	MicroBatch      int
	AllowUpsampling bool
}

// EvaluateOutput holds one result per test resolution, ascending.
type EvaluateOutput struct {
	Results []sweep.TestResult
	// Evaluated counts the results computed now (the others were stored).
	Evaluated int
	Seconds   float64 `json:",omitempty"` // evaluating (the activity's wall time, waiting apart)
	// WaitSeconds: waiting for a worker to take it and for a slot on it.
	WaitSeconds float64 `json:",omitempty"`
}

// RecordInput is a finished combination.
type RecordInput struct {
	Sweep   string
	Outcome sweep.Outcome
	// Owner is the combination's workflow ID, whose claim on the config
	// is released ("" before claims existed).
	Owner string `json:",omitempty"`
}

// ClaimInput asks to train a config: one combination workflow at a time
// trains a config, whichever sweeps ask for it.
type ClaimInput struct {
	ConfigHash string
	Owner      string // the asking combination's workflow ID
}

// ClaimOutput says whether the claim was granted, and if not, who trains.
type ClaimOutput struct {
	Granted bool
	Holder  string
}

// ChildrenInput names combination workflows (by ID, latest run) whose
// state the sweep asks the server for.
type ChildrenInput struct {
	IDs []string
}

// ChildrenOutput lists those of them that have closed.
type ChildrenOutput struct {
	Closed []ClosedChild
}

// ClosedChild is how a combination workflow ended: its result when it
// completed, else the status its close maps to and why.
type ClosedChild struct {
	ID     string
	Result *sweep.Outcome `json:",omitempty"`
	Status sweep.Status
	Reason string
}

// RecordOutput says where the result is.
type RecordOutput struct {
	Key string
}

// TrackInput asks for one training's MLflow run to show what the store
// holds of it: created once, its params and tags, every epoch's figures
// once, its status, and the best model when it completed.
type TrackInput struct {
	Sweep      string
	SweepID    string // the sweep workflow's ID: its parent run's identity
	WorkflowID string // the combination's
	Tracking   sweep.TrackingSettings
	Prepared   Prepared
	// Outcome is the workflow's summary; the figures come from the store.
	Outcome sweep.Outcome
	Started time.Time // when the combination started
}

// TrackSweepInput finishes a sweep's parent run: trainings whose runs fell
// behind are brought up to date first, then the report is attached and
// the status set.
type TrackSweepInput struct {
	Spec    sweep.Spec
	SweepID string
	// Outcomes are trainings whose runs fell behind (runs before the
	// ledger sent every outcome: those with Tracking set are behind);
	// FromStore: more fell behind than the sweep names, so every ended
	// training of the sweep in the store is brought up to date.
	Outcomes  []sweep.Outcome
	FromStore bool   `json:",omitempty"`
	Status    string // the sweep's: completed or cancelled
	Started   time.Time
	Ended     time.Time
}

// TrackOutput says where the run is and how far it is.
type TrackOutput struct {
	RunID  string
	URL    string `json:",omitempty"` // the run's page in the tracking UI
	Epochs int    // epochs whose figures the run has
}

// FindTrackedInput asks whether the tracking server has a FINISHED run of
// a config (skip_completed).
type FindTrackedInput struct {
	Tracking   sweep.TrackingSettings
	Sweep      string
	ConfigHash string
}
