package sweep

import (
	"fmt"
	"time"
)

// EpochMetrics are the figures of one finished epoch.
type EpochMetrics struct {
	Epoch     int     `json:"epoch"` // 1-based
	TrainLoss float64 `json:"train_loss"`
	TrainAcc  float64 `json:"train_acc"`
	ValLoss   float64 `json:"val_loss"`
	ValAcc    float64 `json:"val_acc"`
	LR        float64 `json:"lr"`           // at the epoch's last step
	Seconds   float64 `json:"seconds"`      // wall time of training + validation
	ImagesPS  float64 `json:"images_per_s"` // training throughput
	// DeviceSeconds is the training's own share of its worker's device
	// over Seconds (0 in records written before it was kept: Seconds).
	DeviceSeconds float64 `json:"device_seconds,omitempty"`
	// The host's CPU utilisation over the epoch's training and validation
	// (0..100, all cores, as MLflow's system metrics count it; 0 when the
	// epoch was resumed mid-way, so not timed whole in one process) and its
	// memory in use when the epoch ended: what else ran shows here. Zero in
	// records written before they were kept.
	HostCPUPercent    float64 `json:"host_cpu_percent,omitempty"`
	HostMemoryMB      float64 `json:"host_memory_mb,omitempty"`
	HostMemoryPercent float64 `json:"host_memory_percent,omitempty"`
	// GPUs are the host's GPUs over the epoch's training and validation
	// (the mean of samples every few seconds; MLflow's gpu_N_* system
	// metrics); none on a CPU host, where NVML could not be read, for an
	// epoch resumed mid-way, and in records written before they were kept.
	GPUs []GPUFigures `json:"gpus,omitempty"`
	// FinishedAt is when the epoch's figures were known: stored with them,
	// so each figure has one time wherever it is shown (MLflow's metric
	// timestamps); zero in records written before it was kept.
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// GPUFigures are one GPU's figures over an epoch, host-wide as nvidia-smi
// shows them (what else ran on the GPU shows here). A figure the GPU does
// not give (utilisation on a MIG-partitioned GPU, power on some boards) is
// left out.
type GPUFigures struct {
	Index              int      `json:"index"`     // NVML's
	MemoryMB           float64  `json:"memory_mb"` // used, 10^6 bytes
	MemoryPercent      float64  `json:"memory_percent"`
	UtilizationPercent *float64 `json:"utilization_percent,omitempty"`
	PowerWatts         *float64 `json:"power_watts,omitempty"`
	PowerPercent       *float64 `json:"power_percent,omitempty"` // of its enforced limit
}

// Progress is how far a training has come: the epochs done, their figures
// and the best epoch so far (by validation loss). Checkpoint records,
// outcomes and the workflows' state embed it; its JSON names are those of
// stored records and results.
type Progress struct {
	EpochsDone  int            `json:"epochs_done"`
	Metrics     []EpochMetrics `json:"metrics,omitempty"`
	BestEpoch   int            `json:"best_epoch,omitempty"`
	BestValLoss float64        `json:"best_val_loss,omitempty"`
	BestValAcc  float64        `json:"best_val_acc,omitempty"`
}

// Status of a combination in a sweep.
type Status string

const (
	Pending   Status = "pending"
	Running   Status = "running"
	Paused    Status = "paused"
	Completed Status = "completed"
	Failed    Status = "failed"
	Skipped   Status = "skipped" // already completed, by this or an earlier sweep
	Cancelled Status = "cancelled"
	// Terminated and TimedOut: the combination's workflow was ended from
	// outside (temporal workflow terminate, the Web UI) or ran past its
	// timeout, without recording an outcome.
	Terminated Status = "terminated"
	TimedOut   Status = "timed out"
)

// Done reports whether a status is final.
func (s Status) Done() bool {
	switch s {
	case Completed, Failed, Skipped, Cancelled, Terminated, TimedOut:
		return true
	}
	return false
}

// HasResult reports whether a status ends with a result: completed, or
// skipped for the result another run recorded.
func (s Status) HasResult() bool { return s == Completed || s == Skipped }

// Keys point at a combination's stored checkpoints (record keys).
type Keys struct {
	Best   string `json:"best,omitempty"`
	Final  string `json:"final,omitempty"`
	Latest string `json:"latest,omitempty"`
}

// Resume records one time training continued from a checkpoint.
type Resume struct {
	Epoch   int    `json:"epoch"` // 1-based epoch that continued
	Step    int    `json:"step"`  // steps of it already done
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
}

// Outcome is everything known about one combination of a sweep; the
// workflows keep it as state, the results index stores it and the report
// reads it. Its parts say what each figure is about; in JSON their fields
// are the outcome's own (testdata/golden_outcome.json).
type Outcome struct {
	Identity
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	Epochs int    `json:"epochs"` // asked for
	Progress
	Course
	Recorded
	Timings
	DataFacts
	TestFacts
	TrackingInfo
}

// Identity is which training an outcome is of.
type Identity struct {
	Model      string `json:"model"`
	Family     string `json:"family"`
	Resolution int    `json:"resolution"`
	Seed       uint64 `json:"seed,omitempty"` // of the sweep's seeds list (0: none)
	ConfigHash string `json:"config_hash,omitempty"`
	// StartedFrom names the pretrained weights a fine-tuned training
	// started from ("": from scratch).
	StartedFrom string `json:"started_from,omitempty"`
}

// Course is how the training went on the way: where it stands within an
// epoch, what stopped or shrank it, where it resumed and on what.
type Course struct {
	// Last is the latest epoch's figures, kept when Summarise drops Metrics.
	Last         *EpochMetrics `json:"last_epoch,omitempty"`
	Step         int           `json:"step,omitempty"` // steps done in epoch EpochsDone+1
	EarlyStopped bool          `json:"early_stopped,omitempty"`
	MicroBatch   int           `json:"micro_batch,omitempty"`
	OOMs         int           `json:"ooms,omitempty"`
	Resumes      []Resume      `json:"resumes,omitempty"`
	Device       string        `json:"device,omitempty"`
	// Numerics are the distinct fingerprints (Numerics.String) its epochs
	// ran under, in the order first met: more than one means it moved
	// between unlike workers (MixedNumerics).
	Numerics []string `json:"numerics,omitempty"`
}

// Recorded is where the training's products are: its checkpoints, its
// results index entry, the sweep that trained it when this one skipped
// it, and when it ended.
type Recorded struct {
	Keys        Keys      `json:"keys"`
	ResultKey   string    `json:"result_key,omitempty"`   // results index entry
	SkippedFrom string    `json:"skipped_from,omitempty"` // sweep that trained it
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// Timings are where the training's time went and what it cost, with the
// arithmetic that needs nothing else (EpochSplit, CarryEpochCosts, ...);
// what also needs its status or epochs (ComputeHours, ImagesPerSec) is
// Outcome's.
type Timings struct {
	TrainSeconds float64 `json:"train_seconds,omitempty"`
	EvalSeconds  float64 `json:"eval_seconds,omitempty"`
	CkptSeconds  float64 `json:"checkpoint_seconds,omitempty"`
	EpochSeconds float64 `json:"epoch_activity_seconds,omitempty"` // TrainEpoch activities, wall
	OtherSeconds float64 `json:"other_seconds,omitempty"`          // checkpoint I/O, validation, set-up
	WallSeconds  float64 `json:"wall_seconds,omitempty"`
	// RestoreSeconds: finding and restoring checkpoints, opening the data,
	// building models, summed over the epochs (EpochRuns) trained here;
	// ResidentEpochs of them went on from a model held in memory.
	RestoreSeconds float64 `json:"restore_seconds,omitempty"`
	EpochRuns      int     `json:"epoch_runs,omitempty"`
	ResidentEpochs int     `json:"resident_epochs,omitempty"`
	// WaitSeconds: scheduled but not running (queued for a worker or a
	// training slot, paused). PrepareSeconds: preparing (validating the
	// config, hashing the data source; the cache is built when an epoch
	// opens the training: CacheBuildSeconds).
	WaitSeconds    float64 `json:"wait_seconds,omitempty"`
	PrepareSeconds float64 `json:"prepare_seconds,omitempty"`
	// CacheBuildSeconds: building cold data caches when epochs opened
	// their training (apart from RestoreSeconds; no epoch's).
	CacheBuildSeconds float64 `json:"cache_build_seconds,omitempty"`
	// DeviceSeconds is the training's own share of its workers' device
	// over its training and validation; SharedEpochs of its epochs shared
	// the device with other trainings or data cache builds (0 in outcomes
	// recorded before: TrainSeconds + EvalSeconds then).
	DeviceSeconds float64 `json:"device_seconds,omitempty"`
	SharedEpochs  int     `json:"shared_epochs,omitempty"`
	// CarriedEpochs were trained by an earlier run (a cancelled sweep, a
	// terminated child, a result never recorded) and resumed from their
	// checkpoints: their training, validation and device seconds
	// (CarriedSeconds of wall time) come from their figures
	// (CarryEpochCosts); their other costs are not known.
	// ContendedEpochs ran while other processes on their host used more
	// than ContendedShare of its CPUs (other workers' containers on one
	// machine, a neighbour VM); HostOthers is the largest share seen. Their
	// time and throughput were measured on a shared host.
	ContendedEpochs int     `json:"contended_epochs,omitempty"`
	HostOthers      float64 `json:"host_others,omitempty"`
	CarriedEpochs   int     `json:"carried_epochs,omitempty"`
	CarriedSeconds  float64 `json:"carried_seconds,omitempty"`
	// ImagesPSSum is the sum of the epochs' throughputs over ImagesPSEpochs
	// epochs: a summary's mean images/s, the same as the full outcome's.
	ImagesPSSum    float64 `json:"images_ps_sum,omitempty"`
	ImagesPSEpochs int     `json:"images_ps_epochs,omitempty"`
	// TestSeconds: evaluating the best checkpoint at the test resolutions.
	TestSeconds float64 `json:"test_seconds,omitempty"`
}

// DataFacts are what the training's data was: its recipe, its images.
type DataFacts struct {
	// Augment is the data recipe; SkippedImages did not decode and were
	// left out (skip_bad_images).
	Augment       string `json:"augment,omitempty"`
	SkippedImages int    `json:"skipped_images,omitempty"`
	// NativeSide is the data's image size (median shorter side).
	NativeSide int `json:"native_side,omitempty"`
	// ValImages is the size of the validation set the accuracies are on.
	ValImages int `json:"val_images,omitempty"`
}

// TestFacts are the best checkpoint's figures at each test resolution
// (the train x test resolution map), or why there are none.
type TestFacts struct {
	TestResults []TestResult `json:"test_results,omitempty"`
	TestError   string       `json:"test_error,omitempty"`
}

// TrackingInfo is the training's MLflow run; Tracking says how far it is
// ("" while tracking is off, "behind: why" when it lags).
type TrackingInfo struct {
	TrackingRun string `json:"mlflow_run,omitempty"`
	TrackingURL string `json:"mlflow_url,omitempty"` // the run's page
	Tracking    string `json:"tracking,omitempty"`
}

// DataInfo says what a training was fed and how: enough to evaluate its
// weights outside ResoMap. Checkpoint records carry it.
type DataInfo struct {
	Augment string    `json:"augment"` // dataset.AugmentCIFAR or AugmentImageNet
	Classes []string  `json:"classes"` // in label order
	Mean    []float32 `json:"mean"`    // per channel, [0,1] units, of the training split
	Std     []float32 `json:"std"`
	// ValTransform is the validation input pipeline in torchvision's terms.
	ValTransform  string `json:"val_transform"`
	TrainImages   int    `json:"train_images"`
	ValImages     int    `json:"val_images"`
	SkippedImages int    `json:"skipped_images,omitempty"` // did not decode (skip_bad_images)
	NativeSide    int    `json:"native_side,omitempty"`    // median shorter side of the source images
}

// TestResult is a checkpoint's validation figures at one test resolution;
// Skipped says why there are none.
type TestResult struct {
	Resolution int     `json:"resolution"`
	ValAcc     float64 `json:"val_acc"`
	ValLoss    float64 `json:"val_loss"`
	Images     int     `json:"images"`
	Skipped    string  `json:"skipped,omitempty"`
}

// EpochSplit is where an epoch's time goes, on average over the epochs a
// combination trained: training steps, validation, waiting for checkpoints
// to be stored, restoring (checkpoint, data, model), waiting (queued for
// a worker or a slot, paused) and the rest of its wall time (scheduling,
// bookkeeping). Preparing and building a cold data cache are no epoch's.
type EpochSplit struct {
	Train, Validation, CheckpointWait, Restore, Other float64 // seconds
	Waiting                                           float64
}

// EpochSplit splits the training's time per epoch; false before any epoch.
func (o Timings) EpochSplit() (EpochSplit, bool) {
	if o.EpochRuns == 0 {
		return EpochSplit{}, false
	}
	n := float64(o.EpochRuns)
	// Test-resolution evaluation, preparing and building the data cache
	// are no epoch's.
	wall := o.WallSeconds - o.TestSeconds - o.PrepareSeconds - o.CacheBuildSeconds
	if o.WallSeconds == 0 { // still running: the epochs' own time
		wall = o.EpochSeconds - o.CacheBuildSeconds
	}
	s := EpochSplit{Train: o.TrainSeconds / n, Validation: o.EvalSeconds / n, CheckpointWait: o.CkptSeconds / n,
		Restore: o.RestoreSeconds / n, Waiting: o.WaitSeconds / n}
	s.Other = max(0, wall/n-s.Train-s.Validation-s.CheckpointWait-s.Restore-s.Waiting)
	return s, true
}

// Fixed is an epoch's fixed cost: its time outside training, validation
// and waiting.
func (s EpochSplit) Fixed() float64 { return s.CheckpointWait + s.Restore + s.Other }

// Outside is the fixed cost's share of the epoch's time, waiting apart.
func (s EpochSplit) Outside() float64 {
	all := s.Train + s.Validation + s.Fixed()
	if all == 0 {
		return 0
	}
	return s.Fixed() / all
}

func (s EpochSplit) String() string {
	return fmt.Sprintf("train %.2fs, val %.2fs, ckpt wait %.2fs, restore %.2fs, other %.2fs (%.1f%% fixed cost), waiting %.2fs",
		s.Train, s.Validation, s.CheckpointWait, s.Restore, s.Other, 100*s.Outside(), s.Waiting)
}

// ComputeHours is the device time the combination's training and
// validation took, its own share where it shared the device (0 for a
// skipped one: another sweep paid for it).
func (o Outcome) ComputeHours() float64 {
	if o.Status == Skipped {
		return 0
	}
	return o.deviceSeconds() / 3600
}

// deviceSeconds is the training's and validation's own device time.
func (o Timings) deviceSeconds() float64 {
	if o.DeviceSeconds > 0 {
		return o.DeviceSeconds
	}
	return o.TrainSeconds + o.EvalSeconds
}

// DeviceImagesPerSec is ImagesPerSec on the training's own share of the
// device where it shared it: what it trains at with the device to itself.
// A training that had the device to itself keeps its measured rate (its
// device time may be below its wall time when it could not use every
// core, which is no faster training).
func (o Outcome) DeviceImagesPerSec() float64 {
	ips, wall := o.ImagesPerSec(), o.TrainSeconds+o.EvalSeconds
	if o.SharedEpochs == 0 || o.DeviceSeconds <= 0 || o.DeviceSeconds >= wall {
		return ips
	}
	return ips * wall / o.DeviceSeconds
}

// ContendedShare is the share of a host's CPUs other processes may use
// while an epoch trains before its figures are flagged as measured on a
// shared host.
const ContendedShare = 0.2

// AddHostOthers notes an epoch during which other processes used share of
// its host's CPUs.
func (o *Timings) AddHostOthers(share float64) {
	if share > ContendedShare {
		o.ContendedEpochs++
	}
	o.HostOthers = max(o.HostOthers, share)
}

// CarryEpochCosts counts the epochs a training resumes after (trained by
// an earlier run, their figures from its checkpoints) in its costs, so
// that its compute hours are the whole training's, not those of the
// epochs this run trains.
func (o *Timings) CarryEpochCosts(earlier []EpochMetrics) {
	for _, m := range earlier {
		device := m.DeviceSeconds
		if device <= 0 {
			device = m.Seconds // a record written before device seconds were kept
		}
		o.TrainSeconds += m.Seconds
		o.DeviceSeconds += device
		o.EpochSeconds += m.Seconds
		o.CarriedSeconds += m.Seconds
		o.EpochRuns++
		o.CarriedEpochs++
		o.AddEpochThroughput(m)
	}
}

// Exported says whether a completed outcome names its best and final
// models (a result recorded without them is healed when met).
func (o Outcome) Exported() bool { return o.Keys.Best != "" && o.Keys.Final != "" }

// ID is the training's name, as Combination.ID.
func (o Outcome) ID() string { return TrainingID(o.Model, o.Resolution, o.Seed) }

// ImagesPerSec is the mean training throughput over the epochs run: the
// same figure from the full outcome (the report's) and from a summary
// (starter status's), which keeps the sum; of a summary written before
// the sum was kept, the latest epoch's.
func (o Outcome) ImagesPerSec() float64 {
	var s float64
	for _, m := range o.Metrics {
		s += m.ImagesPS
	}
	switch {
	case len(o.Metrics) > 0:
		return s / float64(len(o.Metrics))
	case o.ImagesPSEpochs > 0:
		return o.ImagesPSSum / float64(o.ImagesPSEpochs)
	case o.Last != nil:
		return o.Last.ImagesPS
	}
	return 0
}

// AddEpochThroughput counts an epoch's throughput in the running mean a
// summary keeps (ImagesPerSec).
func (o *Timings) AddEpochThroughput(m EpochMetrics) {
	o.ImagesPSSum += m.ImagesPS
	o.ImagesPSEpochs++
}

// Summarise drops the per-epoch figures, keeping the latest epoch's: the
// workflows keep and send summaries, whose size does not grow with epochs
// (the store keeps every epoch's figures).
func (o *Outcome) Summarise() {
	if n := len(o.Metrics); n > 0 {
		last := o.Metrics[n-1]
		o.Last, o.Metrics = &last, nil
	}
}
