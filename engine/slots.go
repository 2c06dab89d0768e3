package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// Slots are a worker's training slots: they bound the trainings (and
// evaluations) it runs at once, and each runs its libtorch calls on one OS
// thread of its own for the worker's life.
//
// On a CPU where every slot's threads fit on cores of their own, each
// slot's thread is pinned to its cores (SlotCPUs). Two trainings side by
// side on two cores, left to the kernel, each took 6-17% more CPU time per
// image than one alone (the kernel moves them between cores, and each move
// leaves a core's caches behind); pinned, 1-5%, which keeps a training's
// compute hours close to what it costs alone. A thread of its own also
// keeps one OpenMP thread team per slot (libtorch keeps one per calling
// thread), and a team's threads, started from the pinned thread, stay on
// its cores.
type Slots struct {
	free chan *Slot
}

// Slot is one training slot, taken with Slots.Take or TryTake.
type Slot struct {
	slots *Slots
	cpus  []int // the cores its thread is pinned to (nil: not pinned)
	work  chan func()
}

// NewSlots starts n slots; cpus, when not nil, holds each slot's cores
// (see SlotCPUs). The slots' threads live as long as the process.
func NewSlots(n int, cpus [][]int) (*Slots, error) {
	if n < 1 {
		return nil, fmt.Errorf("slots: want at least one, got %d", n)
	}
	if cpus != nil && len(cpus) != n {
		return nil, fmt.Errorf("slots: %d slots but %d core sets", n, len(cpus))
	}
	s := &Slots{free: make(chan *Slot, n)}
	for i := range n {
		sl := &Slot{slots: s, work: make(chan func())}
		if cpus != nil {
			sl.cpus = cpus[i]
		}
		started := make(chan error)
		go sl.serve(started)
		if err := <-started; err != nil {
			return nil, err
		}
		s.free <- sl
	}
	return s, nil
}

// SlotCPUs splits the cores this process may use between slots trainings
// of threads threads each: consecutive cores, threads to a slot. It returns
// nil (no pinning) when the slots' threads take every core (nothing to keep
// apart) or do not fit on the cores without sharing one. One slot with
// cores to spare is pinned too: the worker's other work (the next
// combination's preparation, storing checkpoints, Temporal) then runs on
// the spare cores instead of moving the training between cores.
func SlotCPUs(slots, threads int) ([][]int, error) {
	cores, err := threadCores()
	if err != nil {
		return nil, err
	}
	return splitCores(cores, slots, threads), nil
}

// threadCores lists the cores the calling thread may run on (the
// process's, called from any thread but a slot's).
func threadCores() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("slots: reading this thread's cores: %w", err)
	}
	var cores []int
	for c := 0; len(cores) < set.Count(); c++ {
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}

// splitCores hands threads consecutive cores to each of slots (nil when
// they do not fit, or take them all in one slot).
func splitCores(cores []int, slots, threads int) [][]int {
	if slots < 1 || threads < 1 || slots*threads > len(cores) || slots == 1 && threads == len(cores) {
		return nil
	}
	out := make([][]int, slots)
	for i := range out {
		out[i] = cores[i*threads : (i+1)*threads]
	}
	return out
}

// serve locks the slot's goroutine to its thread, pins it, and runs the
// work handed to it, one function at a time, for the process's life.
func (sl *Slot) serve(started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread is the slot's
	if sl.cpus != nil {
		var set unix.CPUSet
		for _, c := range sl.cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			started <- fmt.Errorf("slots: pinning a slot to cores %v: %w", sl.cpus, err)
			return
		}
	}
	started <- nil
	for f := range sl.work {
		f()
	}
}

// Take waits for a free slot, or for ctx to end.
func (s *Slots) Take(ctx context.Context) (*Slot, error) {
	select {
	case sl := <-s.free:
		return sl, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TryTake takes a free slot if there is one.
func (s *Slots) TryTake() (*Slot, bool) {
	select {
	case sl := <-s.free:
		return sl, true
	default:
		return nil, false
	}
}

// Release hands the slot back; the nil slot (no bound) has nothing to
// hand back.
func (sl *Slot) Release() {
	if sl != nil {
		sl.slots.free <- sl
	}
}

// errPanicked: work run in a slot panicked (a bug, or a libtorch call
// that went wrong); the attempt fails with it and is retried.
var errPanicked = errors.New("panic in a training slot")

// Run runs f on the slot's thread and waits for it. A panic in f comes
// back as an error (with its stack), so that the caller's ordinary error
// path runs: the device-share accounting stops, a reserved resident place
// is dropped, the slot is released; re-raised, it unwound past them and
// skewed compute hours for good. A nil slot runs f in place, alike.
func (sl *Slot) Run(f func()) error {
	if sl == nil {
		return contain(f)
	}
	done := make(chan error, 1)
	sl.work <- func() { done <- contain(f) }
	return <-done
}

// panicError is a panic of slot work: one line for the attempt's failure
// (it lands in the workflow's history), the stack for the worker's log.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("%v: %.200v", errPanicked, p.value) }
func (p *panicError) Unwrap() error { return errPanicked }

// Logger is where the engine logs (an activity's logger).
type Logger interface {
	Info(msg string, keyvals ...any)
	Error(msg string, keyvals ...any)
}

// RunLogged is slot.Run whose panic's stack goes to log, if any (the error
// holds one line).
func RunLogged(log Logger, slot *Slot, f func()) error {
	err := slot.Run(f)
	var p *panicError
	if errors.As(err, &p) && log != nil {
		log.Error("panic in a training slot", "panic", fmt.Sprintf("%.200v", p.value), "stack", string(p.stack))
	}
	return err
}

// contain runs f, turning a panic into a panicError.
func contain(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	f()
	return nil
}
