// Package engine is a worker's training engine: its training slots (a
// thread each, pinned to cores of its own on a CPU: slots.go), the
// sessions it keeps in memory between epochs (residents.go), how its
// device's time is split between what it runs at once (device_share.go)
// and what other processes took of the host (host_load.go), the memory
// each run gives back; and, on them, the run of one epoch (TrainEpoch) or
// one evaluation (Evaluate). The activities are its adapters: heartbeats,
// the attempt's store, the workflow's input and output, and how errors
// cross the wire.
package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// What an adapter passes through to the trainer, named here so that it
// needs no other package of the runtime.
type (
	// RunOptions are the hooks and bounds of one training call.
	RunOptions = trainer.RunOptions
	// StepProgress is a training step's figures (heartbeats).
	StepProgress = trainer.StepProgress
	// Evaluation is one test resolution's figures.
	Evaluation = trainer.Evaluation
	// BuildProgress is how far a data cache build has come.
	BuildProgress = dataset.BuildProgress
	// DataIdentity is a data set's content identity and file list.
	DataIdentity = dataset.Identity
)

// ErrInterrupted: the training stopped at a step boundary, its checkpoint
// stored, because its context ended.
var ErrInterrupted = trainer.ErrInterrupted

// PhaseOpeningData begins the phase of a run that opens (and may build)
// its data set: its waits are on the disk, not on the store.
const PhaseOpeningData = trainer.PhaseOpeningData

// Engine runs a worker's trainings and evaluations.
type Engine struct {
	Trainer *trainer.Trainer
	// Slots bound the trainings running at once and run their libtorch
	// calls on threads of their own; nil: no bound, calls run in place.
	Slots *Slots
	// Residents holds trainings between epochs (nil: none is kept).
	Residents *Residents
	device    deviceShare
}

// Device is the device the engine trains on ("cpu", "cuda", "cuda:N").
func (e *Engine) Device() string { return e.Trainer.Device }

// cpuCores is the cores a CPU worker's device has (the Go scheduler's
// count, which follows a container's CPU quota), 0 on a GPU (see
// deviceShare).
func (e *Engine) cpuCores() int {
	if e.Trainer.Device != "cpu" {
		return 0
	}
	return runtime.GOMAXPROCS(0)
}

// residents is the worker's resident-model cache (one that keeps nothing
// when the worker has none).
func (e *Engine) residents() *Residents {
	if e.Residents == nil {
		return &Residents{}
	}
	return e.Residents
}

// HeldModels is the number of trainings held between epochs.
func (e *Engine) HeldModels() int { return e.residents().Count() }

// ErrSlotsTaken: every training slot of this worker is taken, and the
// caller asked not to wait (an epoch sent to this worker's own queue goes
// to the shared one instead).
var ErrSlotsTaken = errors.New("this worker's training slots are all taken")

// TakeSlot takes a training slot, waiting for one (and telling waiting
// first) unless mustNotWait. Without Slots there is no bound: the nil slot
// runs calls in place.
func (e *Engine) TakeSlot(ctx context.Context, mustNotWait bool, waiting func()) (*Slot, error) {
	if e.Slots == nil {
		return nil, nil
	}
	if slot, ok := e.Slots.TryTake(); ok {
		return slot, nil
	}
	if mustNotWait {
		return nil, ErrSlotsTaken
	}
	waiting()
	return e.Slots.Take(ctx)
}

// CheckData makes sure this worker's copy of cfg's data set is the one the
// training was prepared with (same content, wherever it lies and whatever
// its files' times), and names the first file that differs; prepared gives
// the prepared data's identity (an error: its file list is not kept).
func (e *Engine) CheckData(cfg sweep.Config, prepared func() (DataIdentity, error)) error {
	local, err := e.Trainer.DataIdentity(cfg.Data)
	if err != nil {
		return err
	}
	if local.Hash == cfg.DataHash {
		return nil
	}
	diff := "its file list is not kept"
	if want, err := prepared(); err == nil {
		if d := dataset.FirstDifference(want, local); d != "" {
			diff = "first difference: " + d
		}
	}
	return fmt.Errorf("%w: data set %s on this worker differs from the one this training was prepared with (%s)",
		dataset.ErrBadData, cfg.Data, diff)
}

// Epoch is what one epoch's run needs from its adapter.
type Epoch struct {
	Config     sweep.Config
	Epoch      int // trained until this many epochs are done
	MicroBatch int
	// FromResident lets a session held at the newest stored checkpoint go
	// on (a first attempt; a retry starts from its heartbeat's).
	FromResident bool
	// Newest is the key of the newest stored checkpoint; CheckData makes
	// sure this worker's data is the training's; ResumeFrom loads the
	// checkpoint to go on from (nil: the start). Each tells its own phase.
	Newest     func(context.Context) (string, error)
	CheckData  func(context.Context) error
	ResumeFrom func(context.Context) (*checkpoint.Checkpoint, error)
	// Hooks are the training call's (its UntilEpoch, MicroBatch and
	// DeviceShare are the engine's); Hooks.OnPhase also hears the
	// session's opening.
	Hooks RunOptions
	// Interruptible gives, once the session is open, the context training
	// runs under (ended to stop at a step boundary) and its release.
	Interruptible func() (context.Context, func())
	// StoredKey is the key of the checkpoint the epoch stored last.
	StoredKey func() string
	// Log hears a panic in a slot (nil: nobody).
	Log Logger
}

// check says which of ep's hooks is missing: every one but Log is needed
// (Newest only with FromResident), and a missing one found mid-run would
// leave a model reserved or the device's accounting open.
func (ep Epoch) check() error {
	for name, missing := range map[string]bool{"Newest": ep.FromResident && ep.Newest == nil, "CheckData": ep.CheckData == nil,
		"ResumeFrom": ep.ResumeFrom == nil, "Hooks.OnPhase": ep.Hooks.OnPhase == nil, "Interruptible": ep.Interruptible == nil, "StoredKey": ep.StoredKey == nil} {
		if missing {
			return fmt.Errorf("engine: an Epoch without %s", name)
		}
	}
	return nil
}

// EpochRun is how an epoch's run went.
type EpochRun struct {
	// Opened: the training was found and opened (or found already past
	// the epoch), so an error is training's, not finding, checking or
	// opening it. On an error, only Opened is set.
	Opened bool
	// Record is where the training stands: past the epoch when Done, or
	// when a previous attempt had finished it (AlreadyDone: nothing ran).
	Record      checkpoint.Record
	AlreadyDone bool
	// At is where it went on from: the epoch it trained in (1-based) and
	// the step within (Attempt is the adapter's to set).
	At sweep.Resume
	// Resident: it went on from memory. OpenSeconds: finding and opening
	// its session, CacheBuildSeconds of it building the data cache.
	Resident                       bool
	OpenSeconds, CacheBuildSeconds float64
	TrainSeconds, EvalSeconds      float64
	CheckpointSeconds              float64
	// DeviceSeconds is its own share of the device; SharedDevice: it ran
	// next to another user of it; HostOthers: the share of the host's CPUs
	// other processes took meanwhile (CPU workers).
	DeviceSeconds float64
	SharedDevice  bool
	HostOthers    float64
}

// TrainEpoch trains ep's epoch on slot: it goes on from a resident session
// or opens one from the newest good checkpoint (building the data cache
// when cold), trains until the epoch is stored, keeps the session for the
// next epoch, and accounts its device time.
func (e *Engine) TrainEpoch(ctx context.Context, slot *Slot, ep Epoch) (EpochRun, error) {
	var run EpochRun
	if err := ep.check(); err != nil {
		return run, err
	}
	began := time.Now()
	// Opening builds the data cache when it is cold, on every core:
	// trainings running meanwhile share the device with it.
	opening := e.device.start(e.cpuCores())
	s, from, err := e.openSession(ctx, slot, ep)
	opening.stop()
	if err != nil {
		return run, err
	}
	run.OpenSeconds, run.Opened = time.Since(began).Seconds(), true
	if s == nil {
		run.Record, run.AlreadyDone = from.Record, true
		run.At = sweep.Resume{Epoch: from.Record.EpochsDone + 1, Step: from.Record.StepInEpoch}
		return run, nil
	}
	at := s.Record()
	run.At = sweep.Resume{Epoch: at.EpochsDone + 1, Step: at.StepInEpoch}
	run.Resident = from == nil && at.EpochsDone > 0
	if !run.Resident { // opened here: its data cache build (0 when warm) apart
		run.CacheBuildSeconds = s.DataBuildSeconds()
	}
	res, err := e.train(slot, s, ep, &run)
	if err != nil {
		e.residents().drop(s)
		return EpochRun{Opened: true}, err
	}
	// The epoch's checkpoint is stored: the next epoch (this training's
	// or another's) needs only its record, not its bytes in the Go heap.
	last, size := res.Last.Record, res.Last.TensorBytes()
	res.Last = nil
	trainer.ReleaseMemory(size)
	if last.IsFinal {
		e.residents().drop(s) // nothing more to train: free it for the others
	} else {
		e.residents().put(ep.Config.Hash(), ep.StoredKey(), ep.MicroBatch, s)
	}
	run.Record = last
	run.TrainSeconds, run.EvalSeconds, run.CheckpointSeconds = res.TrainSeconds, res.EvalSeconds, res.CheckpointSeconds
	return run, nil
}

// train runs the session's epoch under the adapter's interruptible
// context, its device time and the host's load accounted into run.
func (e *Engine) train(slot *Slot, s *trainer.Session, ep Epoch, run *EpochRun) (*trainer.Result, error) {
	tctx, release := ep.Interruptible()
	defer release()
	use := e.device.start(e.cpuCores())
	host := sampleHost()
	opts := ep.Hooks
	opts.UntilEpoch, opts.MicroBatch, opts.DeviceShare = ep.Epoch, ep.MicroBatch, use.peek
	var res *trainer.Result
	var err error
	if perr := RunLogged(ep.Log, slot, func() { res, err = s.Train(tctx, opts) }); perr != nil {
		res, err = nil, perr
	}
	own, wall, shared := use.stop()
	if e.cpuCores() > 0 {
		run.HostOthers = othersShare(host, sampleHost())
	}
	if err != nil {
		return nil, err
	}
	run.DeviceSeconds, run.SharedDevice = (res.TrainSeconds+res.EvalSeconds)*own/max(wall, 1e-9), shared
	return res, nil
}

// openSession finds the training to continue: the session this worker holds
// at the newest stored checkpoint (when ep allows), or one opened from the
// newest good checkpoint. It returns a nil session and the checkpoint when
// that is already past ep.Epoch. A session it opens is built on the slot's
// thread.
func (e *Engine) openSession(ctx context.Context, slot *Slot, ep Epoch) (*trainer.Session, *checkpoint.Checkpoint, error) {
	if ep.FromResident {
		newest, err := ep.Newest(ctx)
		if err != nil {
			return nil, nil, err
		}
		if s := e.residents().take(ep.Config.Hash(), newest, ep.MicroBatch); s != nil {
			if s.Record().EpochsDone < ep.Epoch {
				return s, nil, nil
			}
			e.residents().drop(s)
		}
	}
	if err := ep.CheckData(ctx); err != nil {
		return nil, nil, err
	}
	from, err := ep.ResumeFrom(ctx)
	if err != nil {
		return nil, nil, err
	}
	if from != nil && from.Record.EpochsDone >= ep.Epoch {
		return nil, from, nil
	}
	e.residents().reserve()
	var s *trainer.Session
	if perr := RunLogged(ep.Log, slot, func() { s, err = e.Trainer.Open(ctx, ep.Config, from, ep.Hooks.OnPhase) }); perr != nil {
		s, err = nil, perr
	}
	if err != nil {
		e.residents().drop(nil)
		return nil, nil, err
	}
	if from != nil {
		// Its tensors are in the model now: the epoch needs only its
		// record, not the bytes (1 GB for vgg11 with momentum).
		size := from.TensorBytes()
		from = &checkpoint.Checkpoint{Record: from.Record}
		trainer.ReleaseMemory(size)
	}
	return s, from, nil
}

// EvaluationRun is what one evaluation of a stored checkpoint needs.
type EvaluationRun struct {
	Config     sweep.Config
	MicroBatch int
	// Load gives the checkpoint (its record and model file) and the
	// resolutions left to evaluate (none: nothing is loaded or run).
	Load func(context.Context) (rec checkpoint.Record, weights []byte, todo []int, err error)
	// Store keeps each resolution's figures as they come; Progress hears
	// a data cache build's.
	Store    func(Evaluation) error
	Progress func(res int, p BuildProgress)
	Log      Logger
}

// Evaluate evaluates a checkpoint at each resolution left on slot: a model
// in memory like a training's, it counts against the worker's bound of
// models from before it loads, and its device time is accounted.
func (e *Engine) Evaluate(ctx context.Context, slot *Slot, ev EvaluationRun) error {
	use := e.device.start(e.cpuCores())
	defer use.stop()
	e.residents().reserve()
	defer e.residents().drop(nil)
	rec, weights, todo, err := ev.Load(ctx)
	if err != nil || len(todo) == 0 {
		return err
	}
	if perr := RunLogged(ev.Log, slot, func() {
		err = e.Trainer.EvaluateAt(ctx, ev.Config, rec, weights, todo, ev.MicroBatch, ev.Store, ev.Progress)
	}); perr != nil {
		err = perr
	}
	trainer.ReleaseMemory(int64(len(weights))) // before the next training opens
	return err
}
