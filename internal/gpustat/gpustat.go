// Package gpustat reads the GPUs' utilisation, memory and power through
// NVML (libnvidia-ml, which the NVIDIA driver installs and the container
// toolkit mounts), loaded at run time with purego like the bridge. The
// figures are MLflow's GPU system metrics: every GPU NVML sees, by its
// index, host-wide (as nvidia-smi shows them), averaged over the samples
// of a span as MLflow's monitor averages its own.
package gpustat

import (
	"fmt"
	"sync"
	"time"

	"github.com/ebitengine/purego"
)

// Figures are one GPU's figures, under the units of MLflow's names
// (gpu_N_utilization_percentage, gpu_N_memory_usage_megabytes and
// _percentage, gpu_N_power_usage_watts and _percentage).
type Figures struct {
	UtilizationPercent float64
	MemoryMB           float64 // used, in 10^6 bytes as MLflow counts
	MemoryPercent      float64
	PowerWatts         float64
	PowerPercent       float64 // of the enforced power limit
}

// nvmlSuccess is NVML_SUCCESS.
const nvmlSuccess = 0

// utilization and memory are nvmlUtilization_t and nvmlMemory_t.
type utilization struct{ GPU, Memory uint32 }
type memory struct{ Total, Free, Used uint64 }

// NVML is an initialised NVML and the handles of its GPUs. Its methods are
// safe for concurrent use (NVML's calls are thread-safe).
type NVML struct {
	utilization func(dev uintptr, u *utilization) int32
	memory      func(dev uintptr, m *memory) int32
	power       func(dev uintptr, mw *uint32) int32
	powerLimit  func(dev uintptr, mw *uint32) int32
	devices     []uintptr
}

// DefaultLibrary is the name NVML is found by on a host with the driver.
const DefaultLibrary = "libnvidia-ml.so.1"

// Open loads NVML from path ("" for DefaultLibrary) and initialises it
// (NVML counts its initialisations, so opening twice is harmless); an
// error says why there are no GPU figures (no driver on a CPU host is the
// usual one).
func Open(path string) (*NVML, error) {
	if path == "" {
		path = DefaultLibrary
	}
	return open(path)
}

func open(path string) (n *NVML, err error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("gpustat: load %s: %w", path, err)
	}
	defer func() {
		if r := recover(); r != nil { // purego panics on a missing symbol
			n, err = nil, fmt.Errorf("gpustat: %s: %v", path, r)
		}
	}()
	var initialise func() int32
	var count func(n *uint32) int32
	var handle func(i uint32, dev *uintptr) int32
	n = &NVML{}
	purego.RegisterLibFunc(&initialise, h, "nvmlInit_v2")
	purego.RegisterLibFunc(&count, h, "nvmlDeviceGetCount_v2")
	purego.RegisterLibFunc(&handle, h, "nvmlDeviceGetHandleByIndex_v2")
	purego.RegisterLibFunc(&n.utilization, h, "nvmlDeviceGetUtilizationRates")
	purego.RegisterLibFunc(&n.memory, h, "nvmlDeviceGetMemoryInfo")
	purego.RegisterLibFunc(&n.power, h, "nvmlDeviceGetPowerUsage")
	purego.RegisterLibFunc(&n.powerLimit, h, "nvmlDeviceGetEnforcedPowerLimit")
	if rc := initialise(); rc != nvmlSuccess {
		return nil, fmt.Errorf("gpustat: nvmlInit: error %d (no GPU, or no driver)", rc)
	}
	var c uint32
	if rc := count(&c); rc != nvmlSuccess {
		return nil, fmt.Errorf("gpustat: nvmlDeviceGetCount: error %d", rc)
	}
	for i := range c {
		var dev uintptr
		if rc := handle(i, &dev); rc != nvmlSuccess {
			return nil, fmt.Errorf("gpustat: nvmlDeviceGetHandleByIndex(%d): error %d", i, rc)
		}
		n.devices = append(n.devices, dev)
	}
	return n, nil
}

// GPUs is how many GPUs NVML sees.
func (n *NVML) GPUs() int { return len(n.devices) }

// Sample reads each GPU's figures now; ok[i] is false where a read of
// GPU i failed (its figures are then left out, not taken as zero).
func (n *NVML) Sample() (figs []Figures, ok []bool) {
	figs, ok = make([]Figures, len(n.devices)), make([]bool, len(n.devices))
	for i, dev := range n.devices {
		var u utilization
		var m memory
		var mw, limit uint32
		if n.utilization(dev, &u) != nvmlSuccess || n.memory(dev, &m) != nvmlSuccess || m.Total == 0 {
			continue
		}
		f := Figures{UtilizationPercent: float64(u.GPU), MemoryMB: float64(m.Used) / 1e6,
			MemoryPercent: 100 * float64(m.Used) / float64(m.Total)}
		// Power is not read on every GPU (some report it unsupported):
		// its figures are then 0, as MLflow's would be missing.
		if n.power(dev, &mw) == nvmlSuccess && n.powerLimit(dev, &limit) == nvmlSuccess && limit > 0 {
			f.PowerWatts, f.PowerPercent = float64(mw)/1000, 100*float64(mw)/float64(limit)
		}
		figs[i], ok[i] = f, true
	}
	return figs, ok
}

// Sampler samples the GPUs every interval from Start to Stop.
type Sampler struct {
	n    *NVML
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	sums  []Figures
	count []int
}

// Start samples now and every interval until Stop.
func (n *NVML) Start(every time.Duration) *Sampler {
	s := &Sampler{n: n, stop: make(chan struct{}), done: make(chan struct{}),
		sums: make([]Figures, n.GPUs()), count: make([]int, n.GPUs())}
	s.take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *Sampler) take() {
	figs, ok := s.n.Sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range figs {
		if !ok[i] {
			continue
		}
		a := &s.sums[i]
		a.UtilizationPercent += f.UtilizationPercent
		a.MemoryMB += f.MemoryMB
		a.MemoryPercent += f.MemoryPercent
		a.PowerWatts += f.PowerWatts
		a.PowerPercent += f.PowerPercent
		s.count[i]++
	}
}

// Stop samples once more, ends the sampling and gives each GPU's mean over
// the span (nil for a GPU never read).
func (s *Sampler) Stop() []*Figures {
	close(s.stop)
	<-s.done
	s.take()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Figures, len(s.sums))
	for i, a := range s.sums {
		if c := float64(s.count[i]); c > 0 {
			out[i] = &Figures{UtilizationPercent: a.UtilizationPercent / c, MemoryMB: a.MemoryMB / c,
				MemoryPercent: a.MemoryPercent / c, PowerWatts: a.PowerWatts / c, PowerPercent: a.PowerPercent / c}
		}
	}
	return out
}
