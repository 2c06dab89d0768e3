package engine

import (
	"sync"
	"syscall"
	"time"
)

// deviceShare splits a worker's device between the activities that use it
// at once (trainings, and data cache builds, which take every core), so
// that a training's compute time is its own share, not the wall time it
// spent next to another: two trainings at once on two cores each take
// about twice as long, and would look twice as dear. The device's time is
// split evenly between the users at each moment: on a GPU its wall time;
// on a CPU the process's CPU time over the device's cores (a training on
// one of two cores uses half the device), which neither other processes on
// the machine nor waits for storage inflate. The zero value is ready to
// use.
type deviceShare struct {
	mu    sync.Mutex
	users map[*deviceUse]struct{}
	// clock is the device's time in seconds: the wall's, or process CPU
	// seconds over the cores on a CPU (set by the first user); wall is the
	// wall clock.
	clock, wall        func() float64
	lastTime, lastWall float64 // clock and wall at the last change of users
}

// deviceUse is one activity's use of the device.
type deviceUse struct {
	share   *deviceShare
	started float64 // wall clock
	seconds float64 // device time attributed to it
	overlap float64 // wall time it spent next to another user
}

// start begins a use; cpuCores > 0 measures a CPU device of that many
// cores by process CPU time, 0 a GPU by the wall clock.
func (d *deviceShare) start(cpuCores int) *deviceUse {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.users == nil {
		if d.wall == nil {
			d.wall = wallSeconds
		}
		if d.clock == nil {
			d.clock = d.wall
			if cpuCores > 0 {
				d.clock = func() float64 { return processCPUSeconds() / float64(cpuCores) }
			}
		}
		d.users = map[*deviceUse]struct{}{}
		d.lastTime, d.lastWall = d.clock(), d.wall()
	}
	d.advance()
	u := &deviceUse{share: d, started: d.wall()}
	d.users[u] = struct{}{}
	return u
}

// advance hands the device time since the last change to the users then.
func (d *deviceShare) advance() {
	now, wall := d.clock(), d.wall()
	n := len(d.users)
	for u := range d.users {
		u.seconds += (now - d.lastTime) / float64(n)
		if n > 1 {
			u.overlap += wall - d.lastWall
		}
	}
	d.lastTime, d.lastWall = now, wall
}

// stop ends the use: it returns the device seconds that were the user's
// own (at most its wall time), its wall time, and whether it shared the
// device for more than 2% of that time (a moment next to a data set
// already built is not worth a mention).
func (u *deviceUse) stop() (own, wall float64, shared bool) {
	d := u.share
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance()
	delete(d.users, u)
	wall = d.wall() - u.started
	return min(u.seconds, wall), wall, u.overlap > 0.02*wall
}

// peek is the device seconds that are the user's own so far and its wall
// time, as stop would say now.
func (u *deviceUse) peek() (own, wall float64) {
	d := u.share
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance()
	wall = d.wall() - u.started
	return min(u.seconds, wall), wall
}

func wallSeconds() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// processCPUSeconds is the user and system CPU time of this process.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
