package results_test

import (
	"context"
	"errors"
	"testing"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// A result is written once; the one exception heals a result recorded
// without its best or final model, which a complete one replaces. A
// complete result is never replaced, not even by another complete one.
func TestResultIsWrittenOnceButHealed(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	x := results.Index{Store: st}
	hash := "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	o := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16, ConfigHash: hash}, Status: sweep.Completed}
	broken := o
	broken.Keys.Latest = "runs/x/epoch_0003.json"
	if _, err := x.Record(ctx, "a", broken); err != nil {
		t.Fatal(err)
	}
	healed := o
	healed.Keys = sweep.Keys{Best: "runs/x/best_model.json", Final: "runs/x/final_model.json"}
	if _, err := x.Record(ctx, "b", healed); err != nil {
		t.Fatalf("healing: %v", err)
	}
	other := healed
	other.Keys.Best = "runs/y/best_model.json"
	for _, again := range []sweep.Outcome{broken, other} {
		if _, err := x.Record(ctx, "c", again); !errors.Is(err, results.ErrAlreadyRecorded) {
			t.Fatalf("recording over a complete result: %v, want ErrAlreadyRecorded", err)
		}
	}
	got, by, err := x.Lookup(ctx, hash)
	if err != nil || got == nil || got.Keys != healed.Keys || by != "b" {
		t.Fatalf("recorded %+v by %s (%v), want the healed keys by b", got, by, err)
	}
}
