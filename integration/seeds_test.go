package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// 13.2: a sweep with two seeds trains each (model, resolution) once per
// seed, as different trainings (other weights), and a rerun skips both.
func TestTwoSeedsTrainTwiceAndSkipOnARerun(t *testing.T) {
	c := dial(t)
	spec := writeSpec(t, strings.Replace(specYAML("seeds", "16", 640), "seed: 3\n", "seeds: [1, 2]\n", 1))
	store, tq := t.TempDir(), "tq-seeds"
	startWorker(t, tq, store)
	if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-seeds"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, c, "sweep-seeds", 5*time.Minute)
	if len(p.Combos) != 2 {
		t.Fatalf("%d trainings, want 2", len(p.Combos))
	}
	hashes := map[string]bool{}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed || o.Seed == 0 {
			t.Fatalf("%s: %s, seed %d", o.ID(), o.Status, o.Seed)
		}
		hashes[o.ConfigHash] = true
	}
	finals := glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "16", "final_model.safetensors"))
	if len(hashes) != 2 || len(finals) != 2 {
		t.Fatalf("%d config hashes, %d final models; want 2 of each", len(hashes), len(finals))
	}
	a, _ := os.ReadFile(finals[0])
	b, _ := os.ReadFile(finals[1])
	if bytes.Equal(a, b) {
		t.Fatal("two seeds trained the same weights")
	}
	if out, err := starter(t, tq, store, "--sweep", spec, "--id", "sweep-seeds-again"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	for _, o := range result(t, c, "sweep-seeds-again", 5*time.Minute).Combos {
		if o.Status != sweep.Skipped {
			t.Errorf("rerun: %s %s", o.ID(), o.Status)
		}
	}
}
