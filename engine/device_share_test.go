package engine

import (
	"math"
	"testing"
)

// A user alone is charged the device's time (on a CPU, the process's CPU
// time over the cores: not the part of its wall time it waited on
// storage); users that overlap split the device's time evenly (here a CPU
// clock that gives each of two trainings on the same cores half of it); a
// share never exceeds the wall time, and a moment's overlap is not
// sharing.
func TestDeviceShareSplitsOverlapsEvenly(t *testing.T) {
	var wall, cpu float64
	d := &deviceShare{clock: func() float64 { return cpu }, wall: func() float64 { return wall }}
	run := func(dw, dc float64) { wall, cpu = wall+dw, cpu+dc }

	alone := d.start(2)
	run(10, 7) // 3 s of it waiting for storage
	if s, w, shared := alone.stop(); s != 7 || w != 10 || shared {
		t.Fatalf("alone: %v s of %v, shared %v; want 7 of 10, not shared", s, w, shared)
	}

	a := d.start(2)
	run(4, 4) // a alone
	b := d.start(2)
	run(8, 8) // both: the device's 8 s split in two
	sa, _, sharedA := a.stop()
	run(2, 2) // b alone
	sb, _, sharedB := b.stop()
	if !sharedA || !sharedB {
		t.Fatalf("overlapping users not marked shared: %v %v", sharedA, sharedB)
	}
	if math.Abs(sa-8) > 1e-9 || math.Abs(sb-6) > 1e-9 {
		t.Fatalf("shares %v and %v s, want 4+8/2 = 8 and 8/2+2 = 6", sa, sb)
	}

	c, e := d.start(2), d.start(2)
	run(1, 5) // a clock running fast (other threads of the process) is capped by the wall
	if s, _, _ := c.stop(); s != 1 {
		t.Fatalf("share %v s over 1 s of wall time", s)
	}
	e.stop()

	long := d.start(2)
	run(100, 100)
	blip := d.start(2)
	run(1, 1)
	blip.stop()
	if _, _, shared := long.stop(); shared {
		t.Fatal("1 s next to another user in 101 s counted as sharing")
	}
}
