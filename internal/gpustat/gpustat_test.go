package gpustat_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/gpustat"
	"github.com/resomap/resomap/internal/gpustat/fakenvml"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSampleReadsEveryGPU(t *testing.T) {
	n, err := gpustat.Open(fakenvml.Build(t))
	if err != nil {
		t.Fatal(err)
	}
	if n.GPUs() != 2 {
		t.Fatalf("%d GPUs, want 2", n.GPUs())
	}
	figs, ok := n.Sample()
	if !ok[0] || !ok[1] {
		t.Fatalf("reads ok %v", ok)
	}
	g0, g1 := figs[0], figs[1]
	if !near(g0.MemoryMB, 20000) || !near(g0.MemoryPercent, 25) || !is(g0.UtilizationPercent, 10) ||
		!is(g0.PowerWatts, 350) || !is(g0.PowerPercent, 50) {
		t.Errorf("GPU 0: %s", show(g0))
	}
	// Like a MIG-partitioned GPU: its memory, and no utilisation or power
	// (nil, not zero).
	if !near(g1.MemoryMB, 40000) || !near(g1.MemoryPercent, 50) || g1.UtilizationPercent != nil || g1.PowerWatts != nil || g1.PowerPercent != nil {
		t.Errorf("GPU 1: %s", show(g1))
	}
}

// A span's figures are the means of its samples, as MLflow's monitor
// averages its own: the first at Start, the last at Stop; each figure
// over the samples that read it (GPU 0's second power read fails: its
// mean is the one reading, not half of it).
func TestSamplerAveragesTheSpan(t *testing.T) {
	n, err := gpustat.Open(fakenvml.Build(t))
	if err != nil {
		t.Fatal(err)
	}
	s := n.Start(time.Hour) // no tick: exactly two samples
	figs := s.Stop()
	if len(figs) != 2 || figs[0] == nil || figs[1] == nil {
		t.Fatalf("figures %v", figs)
	}
	if g0 := *figs[0]; !is(g0.UtilizationPercent, 20) || !is(g0.PowerWatts, 350) || !is(g0.PowerPercent, 50) || !near(g0.MemoryMB, 20000) {
		t.Errorf("GPU 0 over the span: %s, want 20%% busy (10 and 30), 350 W", show(g0))
	}
	if g1 := *figs[1]; !near(g1.MemoryMB, 40000) || g1.UtilizationPercent != nil || g1.PowerWatts != nil {
		t.Errorf("GPU 1 over the span: %s", show(g1))
	}
}

func is(v *float64, want float64) bool { return v != nil && near(*v, want) }

func show(f gpustat.Figures) string {
	p := func(v *float64) string {
		if v == nil {
			return "nil"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("memory %v MB (%v%%), utilisation %s%%, power %s W (%s%%)", f.MemoryMB, f.MemoryPercent,
		p(f.UtilizationPercent), p(f.PowerWatts), p(f.PowerPercent))
}

// No driver, or NVML failing to start: an error that says so, and no
// figures (never zeros taken for readings).
func TestNoNVMLIsAnError(t *testing.T) {
	if _, err := gpustat.Open(filepath.Join(t.TempDir(), "libnvidia-ml.so.1")); err == nil {
		t.Fatal("a missing library opened")
	}
	t.Setenv("FAKE_NVML_FAIL_INIT", "1")
	if _, err := gpustat.Open(fakenvml.Build(t)); err == nil || !strings.Contains(err.Error(), "nvmlInit") {
		t.Fatalf("init failing: %v", err)
	}
}
