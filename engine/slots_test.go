package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSplitCoresGivesEachSlotItsOwn(t *testing.T) {
	cores := []int{0, 1, 2, 3, 5, 7}
	for _, c := range []struct {
		slots, threads int
		want           [][]int
	}{
		{2, 1, [][]int{{0}, {1}}},
		{2, 3, [][]int{{0, 1, 2}, {3, 5, 7}}},
		{3, 2, [][]int{{0, 1}, {2, 3}, {5, 7}}},
		{1, 6, nil}, // one slot on every core: nothing to keep apart
		{1, 2, [][]int{{0, 1}}},
		{4, 2, nil}, // 8 threads on 6 cores: they would share one anyway
		{2, 0, nil},
	} {
		if got := splitCores(cores, c.slots, c.threads); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitCores(%v, %d slots, %d threads) = %v, want %v", cores, c.slots, c.threads, got, c.want)
		}
	}
}

// coresOf is the calling thread's cores, or the test's failure.
func coresOf(t *testing.T) []int {
	t.Helper()
	cores, err := threadCores()
	if err != nil {
		t.Fatal(err)
	}
	return cores
}

func TestSlotsRunOnTheirOwnPinnedThread(t *testing.T) {
	all := coresOf(t)
	if len(all) < 2 {
		t.Skipf("pinning needs two cores; this process may use %v", all)
	}
	cpus := [][]int{{all[0]}, {all[1]}}
	slots, err := NewSlots(2, cpus)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _ := slots.Take(ctx)
	b, _ := slots.Take(ctx)
	if _, ok := slots.TryTake(); ok {
		t.Fatal("a third slot out of two")
	}
	var tidA, tidA2, tidB int
	var coresA, coresB []int
	a.Run(func() { tidA, coresA = unix.Gettid(), coresOf(t) })
	b.Run(func() { tidB, coresB = unix.Gettid(), coresOf(t) })
	a.Run(func() { tidA2 = unix.Gettid() })
	if !reflect.DeepEqual(coresA, cpus[0]) || !reflect.DeepEqual(coresB, cpus[1]) {
		t.Errorf("slots ran on cores %v and %v, want %v", coresA, coresB, cpus)
	}
	if tidA != tidA2 || tidA == tidB || tidA == unix.Gettid() {
		t.Errorf("threads: slot a %d then %d, slot b %d, caller %d; want a's own thread each time", tidA, tidA2, tidB, unix.Gettid())
	}
	if got := coresOf(t); !reflect.DeepEqual(got, all) {
		t.Errorf("the caller's cores changed to %v from %v", got, all)
	}
	a.Release()
	if c, ok := slots.TryTake(); !ok || c != a {
		t.Errorf("after a's release TryTake = %p, %v; want a", c, ok)
	}
}

// A panic in a slot's work comes back as an error with its value and
// stack (so the caller's error path releases what it holds), and the
// slot's thread goes on serving; the nil slot contains it alike.
func TestSlotRunContainsAPanic(t *testing.T) {
	slots, err := NewSlots(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sl, _ := slots.TryTake()
	err = sl.Run(func() { panic("boom") })
	var pe *panicError
	if !errors.Is(err, errPanicked) || !strings.Contains(err.Error(), "boom") || strings.Contains(err.Error(), "\n") ||
		!errors.As(err, &pe) || !strings.Contains(string(pe.stack), "slots_test.go") {
		t.Fatalf("Run of a panicking function: %v; want one line of errPanicked with the value, the stack kept apart", err)
	}
	ran := false
	if err := sl.Run(func() { ran = true }); err != nil || !ran { // the slot's thread survived
		t.Fatalf("the slot no longer runs work after a panic: %v", err)
	}
	var unbounded *Slot
	if err := unbounded.Run(func() { ran = false }); err != nil || ran {
		t.Fatalf("the nil slot did not run in place: %v", err)
	}
	if err := unbounded.Run(func() { panic(fmt.Errorf("in place")) }); !errors.Is(err, errPanicked) {
		t.Fatalf("the nil slot's panic: %v", err)
	}
	unbounded.Release() // nothing to hand back, and no panic
}

func TestNewSlotsRefusesBadSettings(t *testing.T) {
	if _, err := NewSlots(0, nil); err == nil {
		t.Error("zero slots accepted")
	}
	if _, err := NewSlots(2, [][]int{{0}}); err == nil {
		t.Error("two slots with one core set accepted")
	}
	if _, err := NewSlots(1, [][]int{{100000}}); err == nil {
		t.Error("a core this machine does not have accepted")
	}
}
