package trainer_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/torch"
)

// The training loop's path (stage the batch, train micro-batches of it
// without waiting, take the figures afterwards) computes exactly what the
// direct ForwardBackward calls compute.
func TestStagedStepsEqualDirectSteps(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	const n, c, res, nc = 12, 1, 16, 10
	rng := rand.New(rand.NewPCG(7, 8))
	batches := make([]dataset.Batch, 3)
	for i := range batches {
		batches[i] = randomBatch(rng, n, c, res, nc, true)
	}
	spec := torch.ModelSpec{Name: "smallcnn", InChannels: c, NumClasses: nc, InitSeed: 3, Momentum: 0.9, Nesterov: true,
		WeightDecay: 5e-4, Mean: []float32{0.3}, Std: []float32{0.3}}
	direct, err := tr.Lib.NewModel(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	staged, err := tr.Lib.NewModel(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()

	const micro = 5 // 5 + 5 + 2
	for step, b := range batches {
		direct.Seed(uint64(step))
		direct.ZeroGrad()
		var want []torch.MicroBatchMetrics
		for lo := 0; lo < n; lo += micro {
			hi := min(lo+micro, n)
			mb := dataset.Batch{Images: b.Images[lo*c*res*res : hi*c*res*res], Labels: b.Labels[lo:hi], C: c, H: res, W: res}
			l, k, err := direct.ForwardBackward(mb, float64(hi-lo)/n, 0.1)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, torch.MicroBatchMetrics{LossSum: l, Correct: k})
		}
		if err := direct.Step(0.05); err != nil {
			t.Fatal(err)
		}

		staged.Seed(uint64(step))
		if step == 0 {
			if err := staged.Stage(b); err != nil {
				t.Fatal(err)
			}
		}
		staged.ZeroGrad()
		for lo := 0; lo < n; lo += micro {
			if err := staged.ForwardBackwardStaged(lo, min(lo+micro, n), float64(min(lo+micro, n)-lo)/n, 0.1); err != nil {
				t.Fatal(err)
			}
		}
		if err := staged.Step(0.05); err != nil {
			t.Fatal(err)
		}
		// As in Train: the next batch goes up before this step's figures are read.
		if step+1 < len(batches) {
			if err := staged.Stage(batches[step+1]); err != nil {
				t.Fatal(err)
			}
		}
		got, err := staged.TakeMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d micro-batch figures, want %d", step, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d micro-batch %d: staged %+v, direct %+v", step, i, got[i], want[i])
			}
		}
		if again, err := staged.TakeMetrics(nil); err != nil || len(again) != 0 {
			t.Errorf("figures taken twice: %v %v", again, err)
		}
	}
	dw, do := export(t, direct)
	sw, so := export(t, staged)
	if !bytes.Equal(dw, sw) || !bytes.Equal(do, so) {
		t.Errorf("staged training ends with other weights than direct training")
	}

	// Misuse is refused, not undefined.
	fresh, err := tr.Lib.NewModel(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.ForwardBackwardStaged(0, 1, 1, 0); err == nil {
		t.Errorf("training on nothing staged succeeded")
	}
	if err := fresh.Stage(batches[0]); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, n + 1}, {-1, 2}, {3, 3}} {
		if err := fresh.ForwardBackwardStaged(r[0], r[1], 1, 0); err == nil {
			t.Errorf("micro-batch [%d,%d) of a staged batch of %d accepted", r[0], r[1], n)
		}
	}
	bad := batches[0]
	bad.Labels = append([]int64(nil), bad.Labels...)
	bad.Labels[3] = nc
	if err := fresh.Stage(bad); err == nil {
		t.Errorf("a label out of range was staged")
	}
}
