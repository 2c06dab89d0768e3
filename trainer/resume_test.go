package trainer_test

import (
	"bytes"
	"context"
	"math"
	"path"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

func resumeConfig() sweep.Config {
	return sweep.Config{
		Model: "smallcnn", Resolution: 16, Epochs: 2,
		Hyper: sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
			Schedule: "cosine", WarmupEpochs: 0.5, LabelSmoothing: 0.1, CropPadding: 2, Flip: true},
		Seed: 7, Data: "fashion-mnist", TrainLimit: 640, ValLimit: 256,
	}
}

// Interrupting training at any step and resuming it in a fresh process ends
// with the same weights, optimiser state and metrics, bit for bit; also with
// the GPU fast paths (bf16 autocast, channels-last) forced on.
func TestExactResumeAcrossFreshProcesses(t *testing.T) {
	t.Run("fp32", func(t *testing.T) { testExactResume(t, resumeConfig(), false) })
	t.Run("bf16+channels-last", func(t *testing.T) { testExactResume(t, resumeConfig(), true) })
	// Stochastic depth and dropout draw from the model's generator, seeded
	// per step like everything else.
	t.Run("efficientnet-stochastic-depth", func(t *testing.T) {
		cfg := resumeConfig()
		cfg.Model, cfg.Resolution = "efficientnet_b0", 32
		testExactResume(t, cfg, false)
	})
	// The ImageNet recipe on JPEG photos: random resized crops drawn from
	// the step seeds; the reference run assembles batches with three
	// producers, the resumed processes with one.
	t.Run("imagenet-recipe", func(t *testing.T) {
		cfg := resumeConfig()
		cfg.Data, cfg.Augment = photoFolder(t, 720), dataset.AugmentImageNet
		testExactResume(t, cfg, false)
	})
}

func testExactResume(t *testing.T, cfg sweep.Config, fastPaths bool) {
	cache := t.TempDir()

	// Uninterrupted reference run, in a fresh process as each part of the
	// interrupted one: what ran before in this test process (other tests'
	// models) once changed efficientnet_b0's figures here, so the
	// comparison is of fresh processes alike. Its batches are assembled by
	// three producers, the resumed processes' by one.
	refDir := t.TempDir()
	runFreshProcess(t, helperJob{Config: cfg, StoreDir: refDir, CacheDir: cache, FastPaths: fastPaths, LoaderWorkers: 3})

	// The same training, killed twice (inside epoch 1 and inside epoch 2),
	// each part in its own process.
	runDir := t.TempDir()
	runFreshProcess(t, helperJob{Config: cfg, StoreDir: runDir, CacheDir: cache, FastPaths: fastPaths, StopAtEpoch: 1, StopAtStep: 7})
	mids, _ := filepath.Glob(filepath.Join(comboDir(runDir, cfg), "mid_e0001_s000007.json"))
	if len(mids) != 1 {
		t.Fatalf("no mid-epoch checkpoint at epoch 1 step 7 after the interruption")
	}
	runFreshProcess(t, helperJob{Config: cfg, StoreDir: runDir, CacheDir: cache, FastPaths: fastPaths, StopAtEpoch: 2, StopAtStep: 13})
	runFreshProcess(t, helperJob{Config: cfg, StoreDir: runDir, CacheDir: cache, FastPaths: fastPaths})

	// The final epoch's checkpoint (best_model and final_model are exported
	// from such checkpoints once a combination is done).
	final := func(root string) *checkpoint.Checkpoint {
		st, _ := store.NewFile(root)
		key := path.Join(filepath.ToSlash(comboDir("", cfg)), "epoch_0002.json")
		c, err := checkpoint.Repo{Store: st}.Load(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want, got := final(refDir), final(runDir)
	if !bytes.Equal(want.Model, got.Model) {
		t.Error("final weights differ between the uninterrupted and the resumed run")
	}
	if !bytes.Equal(want.Optim, got.Optim) {
		t.Error("final optimiser state differs between the uninterrupted and the resumed run")
	}
	wantRec, gotRec := want.Record, got.Record
	strip := func(ms []sweep.EpochMetrics) []sweep.EpochMetrics {
		out := append([]sweep.EpochMetrics(nil), ms...)
		for i := range out {
			out[i].Seconds, out[i].ImagesPS, out[i].DeviceSeconds, out[i].FinishedAt = 0, 0, 0, time.Time{} // wall-clock figures
			out[i].HostCPUPercent, out[i].HostMemoryMB, out[i].HostMemoryPercent = 0, 0, 0                  // the host's
		}
		return out
	}
	if !reflect.DeepEqual(strip(wantRec.Metrics), strip(gotRec.Metrics)) {
		t.Errorf("per-epoch metrics differ:\nuninterrupted %+v\nresumed       %+v", wantRec.Metrics, gotRec.Metrics)
	}
	wantPrecision := map[bool]string{false: "fp32", true: "bf16-autocast"}[fastPaths]
	if gotRec.Precision != wantPrecision || gotRec.ChannelsLast != fastPaths {
		t.Errorf("record says precision %q, channels-last %v; want %q, %v", gotRec.Precision, gotRec.ChannelsLast, wantPrecision, fastPaths)
	}
	if len(gotRec.Metrics) != 2 || gotRec.SamplesSeen != 2*20*32 || !gotRec.IsFinal {
		t.Errorf("resumed record: %d epochs of metrics, %d samples, final=%v", len(gotRec.Metrics), gotRec.SamplesSeen, gotRec.IsFinal)
	}
}

// A session held open between Train calls (a worker's resident model) ends
// epoch 2 with the same weights as a training restored from epoch 1's
// checkpoint.
func TestSessionEqualsRestore(t *testing.T) {
	cfg := resumeConfig()
	tr := newTrainer(t, t.TempDir())
	s, err := tr.Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, err := s.Train(context.Background(), trainer.RunOptions{UntilEpoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	held, err := s.Train(context.Background(), trainer.RunOptions{UntilEpoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	restored, err := tr.Train(context.Background(), cfg, first.Last, trainer.RunOptions{UntilEpoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held.Last.Model, restored.Last.Model) || !bytes.Equal(held.Last.Optim, restored.Last.Optim) {
		t.Fatal("epoch 2 of a held session differs from epoch 2 after a restore")
	}
	if s.Record().EpochsDone != 2 || held.StepsRun != 20 {
		t.Fatalf("session at %d epochs, %d steps run in the second call", s.Record().EpochsDone, held.StepsRun)
	}
}

// A checkpoint says which arithmetics its steps ran under: a training
// resumed by a trainer of another fingerprint (an unlike worker) lists
// the checkpoint's and then its own, so the result shows it moved.
func TestResumeKeepsTheNumericsItRanUnder(t *testing.T) {
	cfg := resumeConfig()
	tr := newTrainer(t, t.TempDir())
	own := tr.Numerics().String()
	first, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Last.Record.Numerics; len(got) != 1 || got[0] != own {
		t.Fatalf("a fresh training's numerics %q, want [%q]", got, own)
	}
	elsewhere := "libtorch 2.6.0, cpu, OpenBLAS Haswell, avx2, 4 threads"
	first.Last.Record.Numerics = []string{elsewhere}
	second, err := tr.Train(context.Background(), cfg, first.Last, trainer.RunOptions{UntilEpoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Last.Record.Numerics; len(got) != 2 || got[0] != elsewhere || got[1] != own {
		t.Errorf("resumed under %q from a checkpoint of %q: numerics %q", own, elsewhere, got)
	}
}

// Each epoch's figures carry the training's own device time (its share of
// a shared device, as the caller counts it), so that a run resuming after
// it knows what it cost; without a count it is the epoch's time.
func TestEpochFiguresCarryTheirDeviceTime(t *testing.T) {
	cfg := resumeConfig()
	tr := newTrainer(t, t.TempDir())
	start := time.Now()
	half := func() (own, wall float64) { // a device shared evenly with another training
		w := time.Since(start).Seconds()
		return w / 2, w
	}
	shared, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 2, DeviceShare: half})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range shared.Last.Record.Metrics {
		if m.Seconds <= 0 || math.Abs(m.DeviceSeconds-m.Seconds/2) > 0.01*m.Seconds {
			t.Errorf("epoch %d: %.3f device s of %.3f s on a device shared evenly", m.Epoch, m.DeviceSeconds, m.Seconds)
		}
	}
	alone, err := tr.Train(context.Background(), cfg, nil, trainer.RunOptions{UntilEpoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m := alone.Last.Record.Metrics[0]; m.DeviceSeconds != m.Seconds {
		t.Errorf("uncounted: %.3f device s of %.3f s", m.DeviceSeconds, m.Seconds)
	}
}
