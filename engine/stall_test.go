package engine

import (
	"testing"
	"time"
)

// An I/O wait that begins after a long stretch of work that told nobody
// (Prepare's data digest) counts its idle time from its own start: the
// first tick after a download's request is no stall. A wait nested in
// another does not reset it, and no wait is no idle time.
func TestAWaitCountsIdleFromItsStart(t *testing.T) {
	w := &StallWatch{lastAdvance: time.Now().Add(-time.Hour)}
	if w.Idle() != 0 {
		t.Fatal("idle without a wait")
	}
	end := w.Begin()
	defer end()
	if idle := w.Idle(); idle >= time.Minute {
		t.Fatalf("a wait begun now is idle %v", idle)
	}
	w.mu.Lock()
	w.lastAdvance = time.Now().Add(-2 * time.Minute) // and a wait a minute idle does stall
	w.mu.Unlock()
	inner := w.Begin() // a second wait inside the first does not reset it
	defer inner()
	if idle := w.Idle(); idle < time.Minute {
		t.Fatalf("a nested wait reset the idle time to %v", idle)
	}
	w.Phase(PhaseOpeningData + ": building 16px data cache")
	end()
	inner()
	if w.Idle() == 0 {
		t.Fatal("a data cache build is a wait on the data folder, yet not idle")
	}
}
