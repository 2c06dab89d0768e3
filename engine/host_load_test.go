package engine

import (
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// Another process busy on the host's CPUs while an epoch trains shows as
// others' share of the host (the team stack's workers in containers on one
// machine measured each other's load as their own cost, unflagged).
func TestOthersOnTheHostAreMeasured(t *testing.T) {
	var burners []*exec.Cmd
	for range runtime.NumCPU() {
		b := exec.Command("sh", "-c", "while :; do :; done")
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		burners = append(burners, b)
	}
	defer func() {
		for _, b := range burners {
			b.Process.Kill()
			b.Wait()
		}
	}()
	a := sampleHost()
	if !a.OK || a.CPUs < 1 {
		t.Fatalf("no /proc/stat: %+v", a)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) { // this process idles: the burners are the others
		time.Sleep(10 * time.Millisecond)
	}
	if share := othersShare(a, sampleHost()); share < 0.5 {
		t.Errorf("others' share %.2f with a busy loop on every CPU, want at least 0.5", share)
	}
	if s := othersShare(hostSample{}, sampleHost()); s != 0 {
		t.Errorf("an unreadable sample: %.2f", s)
	}
}
