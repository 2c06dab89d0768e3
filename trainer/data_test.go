package trainer_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/trainer"
)

// A training that builds its data cache says so in its phase (what the
// activity heartbeats), with the images done of the total; its checkpoints
// say what they were trained on.
func TestCacheBuildIsReportedAndRecorded(t *testing.T) {
	cfg := resumeConfig()
	cfg.Data, cfg.Epochs, cfg.TrainLimit = photoFolder(t, 120), 1, 64
	tr := newTrainer(t, t.TempDir())
	var mu sync.Mutex
	var phases []string
	res, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{OnPhase: func(p string) {
		mu.Lock()
		phases = append(phases, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	built := false
	for _, p := range phases {
		if strings.HasPrefix(p, trainer.PhaseOpeningData+": building 16px data cache: 120/120 images") {
			built = true
		}
	}
	if !built {
		t.Fatalf("no finished cache build among the phases %q", phases)
	}
	d := res.Last.Record.Data
	if d == nil || d.Augment != dataset.AugmentImageNet || len(d.Classes) != 2 || d.TrainImages != 64 ||
		d.ValTransform != "Resize(18)+CenterCrop(16)" || d.NativeSide != 30 || len(d.Mean) != 3 {
		t.Fatalf("record's data: %+v", d)
	}
}
