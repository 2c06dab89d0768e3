package main

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/resomap/resomap/trainer"
)

func TestSlotsArePinnedOnlyOnACPUWhenAskedAndTheyFit(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skipf("pinning two slots needs two cores; this process may use %d", runtime.NumCPU())
	}
	for _, c := range []struct {
		name string
		set  settings
		want bool
	}{
		{"two slots, a thread each", settings{device: "cpu", concurrency: 2, threads: 1, pinSlots: true}, true},
		{"pinning turned off", settings{device: "cpu", concurrency: 2, threads: 1, pinSlots: false}, false},
		{"on a GPU", settings{device: "cuda", concurrency: 2, threads: 1, pinSlots: true}, false},
		{"one slot with cores to spare", settings{device: "cpu", concurrency: 1, threads: 1, pinSlots: true}, true},
		{"one slot on every core", settings{device: "cpu", concurrency: 1, threads: runtime.NumCPU(), pinSlots: true}, false},
		{"more threads than cores", settings{device: "cpu", concurrency: 2, threads: runtime.NumCPU(), pinSlots: true}, false},
	} {
		slots, pinned, err := slotsFor(c.set, c.set.threads)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if slots == nil || (pinned != "") != c.want {
			t.Errorf("%s: slots %v, pinned to %q; want pinned: %v", c.name, slots != nil, pinned, c.want)
		}
	}
}

// The worker's bounds reach its trainer: the roots confine data and local
// weights alike, hosts and the size bound the downloads.
func TestConfineSettingsReachTheTrainer(t *testing.T) {
	var tr trainer.Trainer
	set := settings{allowPaths: "/data:/models,", allowHosts: "download.pytorch.org, .example.com:8443,", weightsMaxBytes: 1 << 20, weightsMinRate: 4096}
	if err := set.confine(&tr); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tr.Data.Roots, []string{"/data", "/models"}) || !slices.Equal(tr.Weights.Roots, tr.Data.Roots) ||
		!slices.Equal(tr.Weights.AllowHosts, []string{"download.pytorch.org", ".example.com:8443"}) || tr.Weights.MaxBytes != 1<<20 || tr.Weights.MinRate != 4096 {
		t.Fatalf("data roots %q, weights roots %q, hosts %q, max %d, min rate %d", tr.Data.Roots, tr.Weights.Roots, tr.Weights.AllowHosts, tr.Weights.MaxBytes, tr.Weights.MinRate)
	}
	set.weightsMinRate = 0
	if err := set.confine(&tr); err != nil || tr.Weights.MinRate >= 0 {
		t.Errorf("--weights-min-rate 0: %v, min rate %d; want no minimum", err, tr.Weights.MinRate)
	}
	set.weightsMinRate = -1
	if err := set.confine(&trainer.Trainer{}); err == nil {
		t.Error("--weights-min-rate -1 accepted")
	}
	set.weightsMinRate = 4096
	set.allowHosts = "example.com:https"
	if err := set.confine(&trainer.Trainer{}); err == nil || !strings.Contains(err.Error(), "--allow-hosts") {
		t.Errorf("an unreadable entry: %v, want the worker refused to start", err)
	}
}
