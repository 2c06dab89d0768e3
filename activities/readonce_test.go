package activities_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/workflows"
)

// countingStore counts the reads of tensor files.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, ".safetensors") {
		c.mu.Lock()
		c.reads[key]++
		c.mu.Unlock()
	}
	return c.Store.Get(ctx, key)
}

// A retried attempt whose heartbeat names the newest checkpoint reads that
// checkpoint's tensor files once (it read them twice: once as the newest
// good one, again as the heartbeat's).
func TestARetriedAttemptReadsItsCheckpointOnce(t *testing.T) {
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingStore{Store: st, reads: map[string]int{}}
	acts, p, env := setupOn(t, dataset.FashionMNIST, counting)
	key := interruptedAt(t, acts, p, 7)
	counting.mu.Lock()
	clear(counting.reads)
	counting.mu.Unlock()
	env.SetHeartbeatDetails(workflows.Heartbeat{Key: key, Done: 7})
	if _, err := env.ExecuteActivity(acts.TrainEpoch, workflows.TrainEpochInput{Prepared: p, Epoch: 1, CheckpointSteps: 5}); err != nil {
		t.Fatal(err)
	}
	counting.mu.Lock()
	defer counting.mu.Unlock()
	resumed := 0
	for k, n := range counting.reads {
		if strings.Contains(k, "mid_e0001_s000007") || strings.Contains(k, "mid_e0001_s000005") {
			resumed++
			if n != 1 {
				t.Errorf("%s read %d times, want once", k, n)
			}
		}
	}
	if resumed == 0 {
		t.Fatalf("the resumed checkpoint's files were not read at all: %v", counting.reads)
	}
}
