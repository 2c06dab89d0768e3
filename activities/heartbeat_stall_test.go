package activities

import (
	"context"
	"testing"
	"time"
)

// An I/O wait that begins after a long stretch of work that told nobody
// (Prepare's data digest) counts its idle time from its own start: the
// first tick after a download's request is no stall.
func TestAWaitCountsIdleFromItsStart(t *testing.T) {
	h := &heartbeater{ctx: context.Background(), done: make(chan struct{}), stallAfter: time.Minute,
		lastAdvance: time.Now().Add(-time.Hour)}
	end := h.Begin()
	defer end()
	if h.checkStall() {
		t.Fatal("a wait begun now stalled at once")
	}
	h.mu.Lock()
	h.lastAdvance = time.Now().Add(-2 * time.Minute) // and a wait a minute idle does stall
	h.mu.Unlock()
	inner := h.Begin() // a second wait inside the first does not reset it
	defer inner()
	h.mu.Lock()
	idle := time.Since(h.lastAdvance)
	h.mu.Unlock()
	if idle < time.Minute {
		t.Fatalf("a nested wait reset the idle time to %v", idle)
	}
}
