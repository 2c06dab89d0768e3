package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/sweep"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is how often s occurs in the output so far.
func (l *lockedBuffer) count(s string) int { return strings.Count(l.String(), s) }

// startStarter runs the starter in the background, its output in out.
func startStarter(t *testing.T, tq, store string, out *lockedBuffer, args ...string) (wait func() (int, error)) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "starter"), args...)
	cmd.Env = env(tq, store)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	return func() (int, error) {
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			t.Fatalf("starter --wait did not end in 5 minutes:\n%s", out.String())
		}
		if code := exitCode(err); code >= 0 {
			return code, nil
		}
		return 0, err
	}
}

// `starter --wait` follows a sweep to its end through what a long sweep
// meets: started before any worker exists (status meanwhile lists every
// combination of the spec as pending, within 5 s), its worker killed
// mid-sweep and another started 20 s later; it exits 0 when every
// combination completed.
func TestWaitFollowsThroughAbsentAndRestartedWorkers(t *testing.T) {
	store, tq := t.TempDir(), "tq-wait"
	spec := writeSpec(t, specYAML("wait", "16, 24", 3200))
	var out lockedBuffer
	wait := startStarter(t, tq, store, &out, "--sweep", spec, "--wait")
	waitFor(t, "starter --wait to say no worker answers", time.Minute, func() bool { return out.count("no worker answered") > 0 })

	t0 := time.Now()
	status, err := starter(t, tq, store, "status", "--sweep", "wait")
	if took := time.Since(t0); err != nil || took > 5*time.Second ||
		!strings.Contains(status, "smallcnn@16  pending") || !strings.Contains(status, "smallcnn@24  pending") {
		t.Fatalf("status before any worker (%v): %v\n%s", took, err, status)
	}

	w := startWorker(t, tq, store)
	mids := filepath.Join(store, "runs", "*", "cnn", "smallcnn", "*", "mid_e*.json")
	waitFor(t, "training to start", 3*time.Minute, func() bool { return len(glob(t, mids)) > 0 })
	answered := out.count("a worker answers again")
	if answered == 0 {
		t.Fatalf("starter --wait did not note the worker's arrival:\n%s", out.String())
	}
	w.kill9(t)
	killed := time.Now()
	waitFor(t, "starter --wait to notice the lost worker", time.Minute, func() bool { return out.count("no worker answered") > 1 })
	time.Sleep(time.Until(killed.Add(20 * time.Second))) // the gap: a worker back 20 s later
	startWorker(t, tq, store)
	rc, err := wait()
	if err != nil || rc != 0 {
		t.Fatalf("starter --wait: rc %d, %v\n%s", rc, err, out.String())
	}
	if !strings.Contains(out.String(), "smallcnn@16") || out.count("a worker answers again") <= answered {
		t.Errorf("starter --wait's output:\n%s", out.String())
	}
	// The 20 s without a worker are waiting, not the training's fixed
	// cost: what stays outside waiting is the work lost since the last
	// heartbeat and the restore.
	for _, o := range result(t, dial(t), "sweep-wait", time.Minute).Combos {
		sp, _ := o.EpochSplit()
		if len(o.Resumes) > 0 && (o.WaitSeconds < 20 || sp.Other*float64(o.EpochRuns) > o.WaitSeconds/4) {
			t.Errorf("%s: waiting %.1f s, other %.1f s in all, after a worker lost for over 20 s", o.ID(), o.WaitSeconds, sp.Other*float64(o.EpochRuns))
		}
	}
	t.Logf("starter --wait:\n%s", out.String())
}

// A sweep whose only combination fails: `starter --wait` exits 3 (the
// sweep ended, not everything completed), naming it.
func TestWaitExitsNonZeroWhenACombinationFails(t *testing.T) {
	store, tq := t.TempDir(), "tq-waitfail"
	startWorker(t, tq, store)
	// 20 training images cannot make a batch of 32: the epoch fails.
	spec := writeSpec(t, specYAML("waitfail", "16", 20))
	var out lockedBuffer
	rc, err := startStarter(t, tq, store, &out, "--sweep", spec, "--wait")()
	if err != nil || rc != 3 || !strings.Contains(out.String(), "sweep incomplete: 1 of 1 combinations did not complete: smallcnn@16 failed") {
		t.Fatalf("starter --wait on a failing sweep: rc %d, %v\n%s", rc, err, out.String())
	}
}

// With the S3 store frozen (SIGSTOP: it takes connections and answers
// nothing) while a training runs under a 10 s heartbeat timeout, `starter
// status` 25 s later says on that row why the epoch does not progress (the
// stall its attempt heartbeated, its silence, or the retry and its
// reason), not a plain "running"; thawed, the sweep completes.
func TestStatusNamesAStalledStore(t *testing.T) {
	s3 := s3test.Start(t, t.TempDir())
	s3.Env(t)
	s3.CreateBucket(t, "stall")
	tq := "tq-stall"
	logf, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	startWorkerWithEnv(t, logf, []string{"RESOMAP_TASK_QUEUE=" + tq, "RESOMAP_STORE=s3://stall/ck"})
	spec := rewriteHeartbeat(t, writeSpec(t, specYAML("stall", "32", 6400)), 10)
	if out, err := starter(t, tq, t.TempDir(), "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	c := dial(t)
	child := "sweep-stall/smallcnn@32"
	waitFor(t, "training to be under way", 3*time.Minute, func() bool { hb, _ := heartbeatOf(c, child); return hb.Done > 0 })
	s3.Freeze(t)
	frozen := time.Now()
	time.Sleep(time.Until(frozen.Add(25 * time.Second))) // the scenario: status 25 s into the outage
	out, err := starter(t, tq, t.TempDir(), "status", "--sweep", "stall")
	s3.Thaw(t)
	var row string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "smallcnn ") {
			row = line
		}
	}
	if err != nil || !(strings.Contains(row, "stalled") || strings.Contains(row, "no heartbeat for") || strings.Contains(row, "no progress")) {
		t.Fatalf("status 25 s into a frozen store: %v; the row does not say why it does not progress:\n%s", err, out)
	}
	t.Logf("status 25 s into a frozen store:\n%s", out)
	if p := result(t, c, "sweep-stall", 5*time.Minute); p.Combos[0].Status != sweep.Completed {
		t.Fatalf("after the thaw: %s (%s)", p.Combos[0].Status, p.Combos[0].Reason)
	}
}
