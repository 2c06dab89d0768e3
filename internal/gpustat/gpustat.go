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
// (gpu_N_memory_usage_megabytes and _percentage,
// gpu_N_utilization_percentage, gpu_N_power_usage_watts and _percentage).
// A figure the GPU does not give (utilisation on a MIG-partitioned GPU,
// power on some boards) is nil, never a zero taken for a reading.
type Figures struct {
	MemoryMB           float64 // used, in 10^6 bytes as MLflow counts
	MemoryPercent      float64
	UtilizationPercent *float64
	PowerWatts         *float64
	PowerPercent       *float64 // of the enforced power limit
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
func Open(path string) (n *NVML, err error) {
	if path == "" {
		path = DefaultLibrary
	}
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

// Sample reads each GPU's figures now; ok[i] is false where GPU i's
// memory could not be read (its figures are then left out).
func (n *NVML) Sample() (figs []Figures, ok []bool) {
	figs, ok = make([]Figures, len(n.devices)), make([]bool, len(n.devices))
	for i, dev := range n.devices {
		var m memory
		if n.memory(dev, &m) != nvmlSuccess || m.Total == 0 {
			continue
		}
		f := Figures{MemoryMB: float64(m.Used) / 1e6, MemoryPercent: 100 * float64(m.Used) / float64(m.Total)}
		var u utilization
		if n.utilization(dev, &u) == nvmlSuccess {
			f.UtilizationPercent = ptr(float64(u.GPU))
		}
		var mw, limit uint32
		if n.power(dev, &mw) == nvmlSuccess && n.powerLimit(dev, &limit) == nvmlSuccess && limit > 0 {
			f.PowerWatts, f.PowerPercent = ptr(float64(mw)/1000), ptr(100*float64(mw)/float64(limit))
		}
		figs[i], ok[i] = f, true
	}
	return figs, ok
}

func ptr(v float64) *float64 { return &v }

// mean is a running mean of the readings given.
type mean struct {
	sum float64
	n   int
}

func (m *mean) add(v *float64) {
	if v != nil {
		m.sum += *v
		m.n++
	}
}

// value is the mean, nil with no reading.
func (m mean) value() *float64 {
	if m.n == 0 {
		return nil
	}
	return ptr(m.sum / float64(m.n))
}

// span is one GPU's readings over a Sampler's span, each figure its own
// mean (a figure not read in a sample does not pull its mean down).
type span struct{ memoryMB, memoryPercent, utilization, power, powerPercent mean }

// Sampler samples the GPUs from Start to Stop, in a goroutine of its own
// (a hung driver call holds only it).
type Sampler struct {
	n    *NVML
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	spans []span
}

// stopWait bounds how long Stop waits for the last sample.
const stopWait = 2 * time.Second

// Start samples now and every interval, and once more at Stop.
func (n *NVML) Start(every time.Duration) *Sampler {
	s := &Sampler{n: n, stop: make(chan struct{}), done: make(chan struct{}), spans: make([]span, n.GPUs())}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.take()
			select {
			case <-s.stop:
				s.take()
				return
			case <-t.C:
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
		sp := &s.spans[i]
		sp.memoryMB.add(&f.MemoryMB)
		sp.memoryPercent.add(&f.MemoryPercent)
		sp.utilization.add(f.UtilizationPercent)
		sp.power.add(f.PowerWatts)
		sp.powerPercent.add(f.PowerPercent)
	}
}

// Stop ends the sampling (after its last sample, or stopWait if the driver
// does not answer) and gives each GPU's means over the span: nil for a GPU
// never read.
func (s *Sampler) Stop() []*Figures {
	close(s.stop)
	select {
	case <-s.done:
	case <-time.After(stopWait):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Figures, len(s.spans))
	for i, sp := range s.spans {
		if sp.memoryMB.n == 0 {
			continue
		}
		out[i] = &Figures{MemoryMB: *sp.memoryMB.value(), MemoryPercent: *sp.memoryPercent.value(),
			UtilizationPercent: sp.utilization.value(), PowerWatts: sp.power.value(), PowerPercent: sp.powerPercent.value()}
	}
	return out
}
