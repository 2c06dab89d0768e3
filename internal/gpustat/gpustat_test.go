package gpustat_test

import (
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
	if !near(g0.UtilizationPercent, 10) || !near(g0.MemoryMB, 20000) || !near(g0.MemoryPercent, 25) ||
		!near(g0.PowerWatts, 350) || !near(g0.PowerPercent, 50) {
		t.Errorf("GPU 0: %+v", g0)
	}
	if !near(g1.UtilizationPercent, 70) || !near(g1.MemoryMB, 40000) || !near(g1.MemoryPercent, 50) || g1.PowerWatts != 0 {
		t.Errorf("GPU 1 (no power readings): %+v", g1)
	}
}

// A span's figures are the mean of its samples, as MLflow's monitor
// averages its own: the first at Start, the last at Stop.
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
	if !near(figs[0].UtilizationPercent, 20) { // (10 + 30) / 2
		t.Errorf("GPU 0's mean utilisation %v, want 20", figs[0].UtilizationPercent)
	}
	if !near(figs[1].UtilizationPercent, 70) || !near(figs[1].MemoryMB, 40000) {
		t.Errorf("GPU 1: %+v", *figs[1])
	}
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
