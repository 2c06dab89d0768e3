package integration

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/sweep"
)

// vmSize reads a process's virtual memory size in bytes.
func vmSize(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := testfixture.VMSize(pid)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(b)
}

func logHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return bytes.Contains(b, []byte(s))
}

// twoClassImageFolder writes perClass grey PNGs of size x size px into
// dark/ and light/ and returns the folder.
func twoClassImageFolder(t *testing.T, perClass, size int) string {
	t.Helper()
	data := t.TempDir()
	for _, cls := range []string{"dark", "light"} {
		if err := os.MkdirAll(filepath.Join(data, cls), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perClass; i++ {
			img := image.NewGray(image.Rect(0, 0, size, size))
			for p := range img.Pix {
				img.Pix[p] = byte(p*7+i) / 2
				if cls == "light" {
					img.Pix[p] += 128
				}
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, cls, fmt.Sprintf("%02d.png", i)), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return data
}

// A worker whose memory is too small for the configured batch gets an
// out-of-memory error from libtorch. With BatchNorm (smallcnn) a smaller
// micro-batch is another training: the combination ends failed with what
// to set, and no result is recorded under its config's name (before, it
// went on with half the micro-batch under the same hash). Halving for
// models without BatchNorm is TestOutOfMemoryHalvesMicroBatchOnlyWithoutBatchNorm.
func TestOutOfMemoryNeverShrinksABatchNormTraining(t *testing.T) {
	data := twoClassImageFolder(t, 40, 32)
	store, tq := t.TempDir(), "tq-oom"

	// Measure an idle worker's address space, then limit the real one.
	probe := startWorker(t, tq+"-probe", store)
	waitFor(t, "the probe worker to start", time.Minute, func() bool { return logHas(probe.log.Name(), "worker started") })
	base := vmSize(t, probe.cmd.Process.Pid)
	stopProcess(probe.cmd)
	// 2 GB over the idle size: a 64-image step at 320 px needs about 3 GB,
	// a 32-image one about 1.5 GB, which leaves room for libtorch's thread
	// pools (an address-space limit that also starves thread creation makes
	// libtorch hang rather than fail).
	limit := base + 2048<<20

	logf, _ := os.CreateTemp(t.TempDir(), "worker-*.log")
	cmd := exec.Command("prlimit", fmt.Sprintf("--as=%d:%d", limit, limit), "--", filepath.Join(binDir, "worker"), "--threads", "2")
	cmd.Env = env(tq, store)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker log:\n%s", b)
		}
	})
	spec := writeSpec(t, fmt.Sprintf(`name: oom
models: [smallcnn]
resolutions: [320]
epochs: 1
data: %s
allow_upsampling: true
seed: 1
hyper: {batch_size: 64, optimizer: sgd, lr: 0.01, momentum: 0.9, schedule: constant}
activity: {heartbeat_timeout_seconds: 30, max_attempts: 3}
`, data))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	p := result(t, dial(t), "sweep-oom", 3*time.Minute)
	o := p.Combos[0]
	if o.Status != sweep.Failed || o.OOMs != 1 || o.MicroBatch != 64 || !strings.Contains(o.Reason, "hyper.micro_batch: 32") {
		t.Fatalf("%s (%s), OOMs %d, micro-batch %d: want failed once out of memory, saying to set hyper.micro_batch: 32", o.Status, o.Reason, o.OOMs, o.MicroBatch)
	}
	if found, _ := filepath.Glob(filepath.Join(store, "results", "*.json")); len(found) > 0 {
		t.Fatalf("results recorded: %v", found)
	}
	t.Logf("%s (base VM %d MB, limit %d MB)", o.Reason, base>>20, limit>>20)
}
