package trainer_test

import (
	"testing"

	"github.com/resomap/resomap/internal/gpustat"
	"github.com/resomap/resomap/internal/gpustat/fakenvml"
)

// Each epoch's record holds the host's GPUs over the epoch (what MLflow's
// system charts show), read through NVML: here a stand-in library with
// NVML's signatures, on a CPU training. Every epoch is sampled from its
// start (10% busy on the first read of GPU 0) to its end.
func TestEpochRecordsTheGPUs(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	nvml, err := gpustat.Open(fakenvml.Build(t))
	if err != nil {
		t.Fatal(err)
	}
	tr.GPUStats = nvml
	cfg := resumeConfig()
	last := trainToEnd(t, tr, cfg)
	ms := last.Record.Metrics
	if len(ms) != cfg.Epochs {
		t.Fatalf("%d epochs recorded, want %d", len(ms), cfg.Epochs)
	}
	for _, m := range ms {
		if len(m.GPUs) != 2 {
			t.Fatalf("epoch %d: GPU figures %+v, want two GPUs", m.Epoch, m.GPUs)
		}
		g0, g1 := m.GPUs[0], m.GPUs[1]
		// GPU 1, like a MIG-partitioned GPU: memory only.
		if g0.Index != 0 || g1.Index != 1 || g1.MemoryMB != 40000 || g1.MemoryPercent != 50 || g1.UtilizationPercent != nil || g1.PowerWatts != nil {
			t.Errorf("epoch %d: GPU 1 %+v", m.Epoch, g1)
		}
		// GPU 0 reads 10, 30, 50 … busy: a mean of at least two reads,
		// later epochs' reads later in the sequence; its power is read
		// every other time, and the mean is of the readings.
		if g0.UtilizationPercent == nil || *g0.UtilizationPercent < 20 || g0.PowerWatts == nil || *g0.PowerWatts != 350 || *g0.PowerPercent != 50 {
			t.Errorf("epoch %d: GPU 0 %+v", m.Epoch, g0)
		}
	}
	if u0, u1 := ms[0].GPUs[0].UtilizationPercent, ms[1].GPUs[0].UtilizationPercent; u0 == nil || u1 == nil || !(*u1 > *u0) {
		t.Errorf("epoch 2's GPU 0 mean not past epoch 1's: one span sampled twice?")
	}
}
