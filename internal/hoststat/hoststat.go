// Package hoststat reads the host's CPU and memory figures from /proc, as
// MLflow's system metrics report them (host-wide, also inside a
// container): CPU busy time over all cores, memory in use.
package hoststat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat (100 on Linux).
const clockTicks = 100

// CPU is the host's busy CPU time (steal included) at a moment.
type CPU struct {
	Busy float64 // seconds, over all cores
	CPUs int
	At   time.Time
	OK   bool
}

// SampleCPU reads /proc/stat.
func SampleCPU() CPU {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return CPU{}
	}
	defer f.Close()
	s := CPU{At: time.Now()}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 8 && fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					return CPU{}
				}
				s.Busy += v / clockTicks
			}
			s.OK = true
		case strings.HasPrefix(fields[0], "cpu"):
			s.CPUs++
		}
	}
	return s
}

// Percent is the host's CPU utilisation between a and b, 0..100 (MLflow's
// system/cpu_utilization_percentage); ok false when it cannot be told.
func Percent(a, b CPU) (pct float64, ok bool) {
	wall := b.At.Sub(a.At).Seconds()
	if !a.OK || !b.OK || wall <= 0 || b.CPUs == 0 {
		return 0, false
	}
	return min(100, max(0, 100*(b.Busy-a.Busy)/(wall*float64(b.CPUs)))), true
}

// Memory is the host's memory in use (total less available), in MB and as
// a percentage of the total (MLflow's system/system_memory_usage_*).
func Memory() (mb, pct float64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	kb := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 {
			v, err := strconv.ParseFloat(fields[1], 64)
			if err == nil {
				kb[strings.TrimSuffix(fields[0], ":")] = v
			}
		}
	}
	total := kb["MemTotal"]
	avail, ok := kb["MemAvailable"] // kernels before 3.14 lack it
	if !ok || total <= 0 {
		return 0, 0, false
	}
	used := total - avail
	return used / 1024, 100 * used / total, true
}
