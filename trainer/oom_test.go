package trainer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// vmSize reads this process's virtual memory size in bytes.
func vmSize() (uint64, error) {
	b, err := testfixture.VMSize(testfixture.Self)
	return uint64(b), err
}

// oomHelper runs in its own process: under an address-space limit, a batch
// too big for it fails with ErrOutOfMemory (not a crash), and the same batch
// in smaller micro-batches then trains — what the orchestration does on OOM.
func oomHelper() error {
	tr, err := trainer.New("", "cpu", testThreads)
	if err != nil {
		return err
	}
	m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "smallcnn", InChannels: 1, NumClasses: 10, Momentum: 0.9, Mean: []float32{0.5}, Std: []float32{0.5}})
	if err != nil {
		return err
	}
	const n, res = 64, 384
	b := dataset.Batch{Images: make([]byte, n*res*res), Labels: make([]int64, n), C: 1, H: res, W: res}
	// Warm up first: libtorch creates its thread pools lazily, and a thread
	// that cannot be created under the limit hangs libtorch instead of failing.
	warm := dataset.Batch{Images: b.Images[:2*res*res], Labels: b.Labels[:2], C: 1, H: res, W: res}
	if _, _, err := m.ForwardBackward(warm, 1, 0); err != nil {
		return err
	}
	vm, err := vmSize()
	if err != nil {
		return err
	}
	// 1.5 GiB of headroom: one 64-image step needs several GiB of
	// activations, an 8-image micro-batch well under one.
	lim := syscall.Rlimit{Cur: vm + 3<<29, Max: ^uint64(0)}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
		return err
	}
	_, _, err = m.ForwardBackward(b, 1, 0)
	if !errors.Is(err, torch.ErrOutOfMemory) {
		return fmt.Errorf("full batch under the memory limit: %v, want ErrOutOfMemory", err)
	}
	fmt.Println("full batch:", err)
	m.ZeroGrad()
	for lo := 0; lo < n; lo += 8 {
		mb := dataset.Batch{Images: b.Images[lo*res*res : (lo+8)*res*res], Labels: b.Labels[lo : lo+8], C: 1, H: res, W: res}
		if _, _, err := m.ForwardBackward(mb, 8.0/n, 0); err != nil {
			return fmt.Errorf("micro-batch of 8 after OOM: %v", err)
		}
	}
	return m.Step(0.01)
}

func TestOutOfMemoryIsItsOwnErrorAndRecoverable(t *testing.T) {
	testfixture.Long(t, "runs a helper process under a memory limit")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RESOMAP_TEST_HELPER_OOM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("OOM helper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
