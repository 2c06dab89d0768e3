package engine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/resomap/resomap/internal/iowatch"
)

// StallWatch tells whether a run waits on I/O without progress: the store's
// calls and transfers tell it (through iowatch, on the context Watching
// gives) when they wait and when bytes move, and a data cache build (the
// PhaseOpeningData phase) is a wait on the data folder as a whole. Its
// adapter gives the run up when it stays idle too long.
type StallWatch struct {
	mu          sync.Mutex
	waits       int       // I/O operations in flight
	ioPhase     bool      // the phase is a cache build: reading the data folder
	lastAdvance time.Time // of anything: a step, bytes moved, a phase
}

var _ iowatch.Watcher = (*StallWatch)(nil)

// NewStallWatch starts a watch: progress as of now.
func NewStallWatch() *StallWatch { return &StallWatch{lastAdvance: time.Now()} }

// Watching is ctx with w watching its I/O.
func (w *StallWatch) Watching(ctx context.Context) context.Context { return iowatch.With(ctx, w) }

// Begin counts an I/O wait until end (iowatch.Watcher).
func (w *StallWatch) Begin() (end func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waits == 0 {
		// Idle counts from the wait's start: work before it that told
		// nobody (a long data digest) is no stall of this wait.
		w.lastAdvance = time.Now()
	}
	w.waits++
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.waits--
			w.lastAdvance = time.Now()
		})
	}
}

// Advance notes progress: a step, bytes moved, a checkpoint stored.
func (w *StallWatch) Advance() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastAdvance = time.Now()
}

// Phase notes that the run entered phase (progress too).
func (w *StallWatch) Phase(phase string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ioPhase = strings.HasPrefix(phase, PhaseOpeningData)
	w.lastAdvance = time.Now()
}

// Idle is how long the run has waited on I/O without progress (0 when it
// does not wait on I/O).
func (w *StallWatch) Idle() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waits == 0 && !w.ioPhase {
		return 0
	}
	return time.Since(w.lastAdvance)
}
