//go:build linux

package torch_test

import (
	"runtime"
	"syscall"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/torch"
)

// Training steps reuse the memory the step before freed instead of
// faulting it in from the kernel again: resnet18 at 32 px, batch 64,
// driven from a thread of its own as a worker drives it, takes few page
// faults a step (glibc's defaults: about 20,000 a step, 15% of the step's
// time clearing pages).
func TestStepsDoNotFaultTheirMemoryInAgain(t *testing.T) {
	lib, err := torch.Open("")
	if err != nil {
		t.Fatal(err)
	}
	faults := make(chan float64, 1)
	errs := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // as trainer.Session.Train: not the main thread's arena
		defer runtime.UnlockOSThread()
		m, err := lib.NewModel(torch.ModelSpec{Name: "resnet18", InChannels: 1, NumClasses: 10, Momentum: 0.9, Nesterov: true,
			WeightDecay: 5e-4, Mean: []float32{0.5}, Std: []float32{0.25}, InitSeed: 1})
		if err != nil {
			errs <- err
			return
		}
		defer m.Close()
		b := dataset.Batch{Images: make([]byte, 64*32*32), Labels: make([]int64, 64), C: 1, H: 32, W: 32}
		for i := range b.Images {
			b.Images[i] = byte(i * 7)
		}
		step := func() error {
			if err := m.Stage(b); err != nil {
				return err
			}
			if err := m.ZeroGrad(); err != nil {
				return err
			}
			if err := m.ForwardBackwardStaged(0, 64, 1, 0.1); err != nil {
				return err
			}
			if err := m.Step(0.01); err != nil {
				return err
			}
			_, err := m.TakeMetrics(nil)
			return err
		}
		const warm, steps = 3, 8
		var before, after syscall.Rusage
		for i := 0; i < warm+steps; i++ {
			if i == warm {
				syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			}
			if err := step(); err != nil {
				errs <- err
				return
			}
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		faults <- float64(after.Minflt-before.Minflt) / steps
	}()
	select {
	case err := <-errs:
		t.Fatal(err)
	case f := <-faults:
		t.Logf("%.0f page faults a step", f)
		if f > 1000 {
			t.Fatalf("%.0f page faults a training step, want under 1,000: freed memory goes back to the kernel between steps", f)
		}
	}
}
