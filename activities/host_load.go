package activities

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// A worker's device time is split between its own trainings (deviceShare),
// but other processes on the same host — other workers' containers on one
// machine, a neighbour VM stealing cycles — slow an epoch without showing
// in this process's figures: the same sweep's throughput then says 48 px
// trains faster than 32 px. hostSample measures what the host's CPUs did
// for others over an epoch, so such figures are flagged.

// clockTicks is the kernel's USER_HZ, /proc/stat's unit (100 on Linux's
// every mainstream architecture).
const clockTicks = 100

// hostSample is the host's busy CPU time (steal included: a hypervisor's
// other guests), this process's CPU time and the wall clock at a moment.
type hostSample struct {
	busy, own float64 // seconds
	cpus      int
	at        time.Time
	ok        bool
}

// sampleHost reads /proc/stat (host-wide, also inside a container) and
// this process's CPU time.
func sampleHost() hostSample {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return hostSample{}
	}
	defer f.Close()
	s := hostSample{own: processCPUSeconds(), at: time.Now()}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 8 && fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					return hostSample{}
				}
				s.busy += v / clockTicks
			}
			s.ok = true
		case strings.HasPrefix(fields[0], "cpu"):
			s.cpus++
		}
	}
	return s
}

// othersShare is the share of the host's CPU capacity that processes other
// than this one used between a and b (0 when it cannot be told).
func othersShare(a, b hostSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 || b.cpus == 0 {
		return 0
	}
	others := (b.busy - a.busy) - (b.own - a.own)
	return min(1, max(0, others/(wall*float64(b.cpus))))
}
