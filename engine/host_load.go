package engine

import (
	"github.com/resomap/resomap/internal/hoststat"
)

// A worker's device time is split between its own trainings (deviceShare),
// but other processes on the same host — other workers' containers on one
// machine, a neighbour VM stealing cycles — slow an epoch without showing
// in this process's figures: the same sweep's throughput then says 48 px
// trains faster than 32 px. hostSample measures what the host's CPUs did
// for others over an epoch, so such figures are flagged.

// hostSample is the host's busy CPU time (steal included: a hypervisor's
// other guests) and this process's CPU time at a moment.
type hostSample struct {
	hoststat.CPU
	own float64 // seconds
}

// sampleHost reads /proc/stat (host-wide, also inside a container) and
// this process's CPU time.
func sampleHost() hostSample {
	return hostSample{CPU: hoststat.SampleCPU(), own: processCPUSeconds()}
}

// othersShare is the share of the host's CPU capacity that processes other
// than this one used between a and b (0 when it cannot be told).
func othersShare(a, b hostSample) float64 {
	wall := b.At.Sub(a.At).Seconds()
	if !a.OK || !b.OK || wall <= 0 || b.CPUs == 0 {
		return 0
	}
	others := (b.Busy - a.Busy) - (b.own - a.own)
	return min(1, max(0, others/(wall*float64(b.CPUs))))
}
