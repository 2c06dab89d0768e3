package hoststat_test

import (
	"testing"
	"time"

	"github.com/resomap/resomap/internal/hoststat"
)

// The figures are read from this machine's /proc and lie in their ranges;
// busy work raises the CPU figure above an idle wait's floor of 0.
func TestFiguresAreInRange(t *testing.T) {
	a := hoststat.SampleCPU()
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	b := hoststat.SampleCPU()
	pct, ok := hoststat.Percent(a, b)
	if !ok || !(pct > 0 && pct <= 100) || b.CPUs < 1 {
		t.Fatalf("CPU %.1f%% over %d CPUs (ok %v) after %d spins", pct, b.CPUs, ok, x)
	}
	if _, ok := hoststat.Percent(b, a); ok {
		t.Error("a backwards interval gave a figure")
	}
	mb, mpct, ok := hoststat.Memory()
	if !ok || mb <= 0 || mpct <= 0 || mpct > 100 {
		t.Fatalf("memory %.0f MB, %.1f%% (ok %v)", mb, mpct, ok)
	}
}
