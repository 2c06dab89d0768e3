package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// The chaos test's sweep: two resolutions with two seeds each, four
// epochs, checkpoints often, continue-as-new after every finished child,
// retries for long enough to ride out every outage below.
func chaosSpec(name string) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [24, 32]
seeds: [1, 2]
epochs: %d
data: fashion-mnist
train_limit: %d
val_limit: 500
seed: 5
max_parallel: 2
continue_as_new_after: 1
hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: cosine, crop_padding: 2, flip: true}
checkpoint: {every_steps: 15}
activity: {heartbeat_timeout_seconds: 3, max_attempts: 40}
`, name, envInt("RESOMAP_CHAOS_EPOCHS", 4), envInt("RESOMAP_CHAOS_TRAIN_LIMIT", 4800))
}

// envInt is a positive integer from the environment, or def: a long soak
// trains longer (make chaos).
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// chaosServer is a Temporal dev server this test may kill -9 and restart
// (same port, same SQLite file: nothing is lost).
type chaosServer struct {
	addr, db string
	cmd      *exec.Cmd
}

func (s *chaosServer) start(t *testing.T) {
	t.Helper()
	bin, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(s.addr, ":")
	args := append([]string{"server", "start-dev", "--headless", "--db-filename", s.db, "--ip", "127.0.0.1", "--port", port, "--log-level", "error"},
		temporalx.DevServerFlags()...)
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Temporal server", time.Minute, func() bool {
		return exec.Command(bin, "operator", "cluster", "health", "--address", s.addr).Run() == nil
	})
}

func (s *chaosServer) kill9() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
	}
}

// chaosRounds is how many rounds of random worker kills and freezes run:
// chaosSweepTimeout bounds one sweep of the chaos spec: a few minutes an
// epoch of its four trainings on two cores (a long soak's epochs are long).
func chaosSweepTimeout() time.Duration {
	return max(15*time.Minute, time.Duration(envInt("RESOMAP_CHAOS_EPOCHS", 4))*time.Duration(envInt("RESOMAP_CHAOS_TRAIN_LIMIT", 4800))*time.Minute/20000)
}

// `make chaos` sets RESOMAP_CHAOS_ROUNDS for a long soak; CI runs a few.
func chaosRounds() int { return envInt("RESOMAP_CHAOS_ROUNDS", 2) }

// 12.10: two workers under random kill -9 and a frozen-then-woken worker,
// a kill -9 and restart of the Temporal server and of the S3 server, a
// full disk for a while, workers started while a dependency is down; on
// the file store and on S3. Every best/final file equals the uninterrupted
// run's. It prints what it did.
func TestChaos(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the chaos test fills a small tmpfs to make the disk full: run it as root (CI does)")
	}
	c := dial(t)
	spec := writeSpec(t, chaosSpec("chaos"))
	refStore, tq := t.TempDir(), "tq-chaos-ref"
	startWorker(t, tq, refStore)
	if out, err := starter(t, tq, refStore, "--sweep", spec, "--id", "sweep-chaos-ref"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	for _, o := range result(t, c, "sweep-chaos-ref", chaosSweepTimeout()).Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("reference: %s %s (%s)", o.ID(), o.Status, o.Reason)
		}
	}
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) { runChaos(t, spec, backend, refStore) })
	}
}

// chaos is one chaos run's world: its server, store and workers.
type chaos struct {
	t        *testing.T
	rng      *rand.Rand
	temporal *chaosServer
	s3       *s3test.Server
	storeURL string
	disk     string // the file store's tmpfs ("" on S3)
	id, tq   string
	workers  []*workerProc
	start    time.Time
	// what it did, for the summary
	kills, freezes, s3Freezes, storms, commands, terminations int
}

func (ch *chaos) log(format string, args ...any) {
	ch.t.Logf("chaos %6.1fs: %s", time.Since(ch.start).Seconds(), fmt.Sprintf(format, args...))
}

func (ch *chaos) env() []string {
	return []string{"TEMPORAL_ADDRESS=" + ch.temporal.addr, "RESOMAP_TASK_QUEUE=" + ch.tq, "RESOMAP_STORE=" + ch.storeURL}
}

func (ch *chaos) startWorker() *workerProc {
	logf, _ := os.CreateTemp(ch.t.TempDir(), "worker-*.log")
	w := startWorkerWithEnv(ch.t, logf, ch.env())
	ch.workers = append(ch.workers, w)
	return w
}

func (ch *chaos) client() client.Client {
	c, err := client.Dial(client.Options{HostPort: ch.temporal.addr})
	if err != nil {
		ch.t.Fatal(err)
	}
	return c
}

func (ch *chaos) starter(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "starter"), args...)
	cmd.Env = append(env(ch.tq, ch.t.TempDir()), ch.env()...)
	cmd.Dir = ch.t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkpoints are the names of the stored checkpoint records.
func (ch *chaos) checkpoints() map[string]bool {
	root := ch.disk
	if ch.s3 != nil {
		root = filepath.Join(ch.s3.Dir, "chaos", "ck")
	}
	names := map[string]bool{}
	for _, f := range glob(ch.t, filepath.Join(root, "runs", "*", "cnn", "smallcnn", "*", "*.json")) {
		names[f] = true
	}
	return names
}

// progress waits until n new checkpoints were stored, or the sweep ended
// (on a fast machine it can outrun the chaos). It counts names never seen
// before: retention deletes old checkpoints as new ones come, so the count
// of those stored levels off in a long run.
func (ch *chaos) progress(n int) {
	before := ch.checkpoints()
	cl := ch.client()
	defer cl.Close()
	waitFor(ch.t, fmt.Sprintf("%d more checkpoints", n), 5*time.Minute, func() bool {
		fresh := 0
		for name := range ch.checkpoints() {
			if !before[name] {
				fresh++
			}
		}
		if fresh >= n {
			return true
		}
		d, err := cl.DescribeWorkflowExecution(context.Background(), ch.id, "")
		return err == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
}

func (ch *chaos) live() []*workerProc {
	var out []*workerProc
	for _, w := range ch.workers {
		if w.cmd.ProcessState == nil {
			out = append(out, w)
		}
	}
	return out
}

func runChaos(t *testing.T, spec, backend, refStore string) {
	ch := &chaos{t: t, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), id: "sweep-chaos-" + backend,
		tq: "tq-chaos-" + backend, start: time.Now()}
	ch.temporal = &chaosServer{addr: freeAddr(t), db: filepath.Join(t.TempDir(), "temporal.db")}
	ch.temporal.start(t)
	t.Cleanup(ch.temporal.kill9)
	root := ""
	if backend == "s3" {
		ch.s3 = s3test.Start(t, t.TempDir())
		ch.s3.Env(t)
		ch.s3.CreateBucket(t, "chaos")
		ch.storeURL, root = "s3://chaos/ck", filepath.Join(ch.s3.Dir, "chaos", "ck")
	} else {
		ch.disk = mountTmpfs(t, "16m")
		ch.storeURL, root = "file://"+ch.disk, ch.disk
	}
	ch.temporal.kill9()
	ch.log("Temporal server killed (-9)")
	ch.startWorker()
	ch.log("worker 1 started while Temporal is down")
	ch.temporal.start(t)
	ch.log("Temporal server restarted")
	ch.startWorker()
	if out, err := ch.starter("--sweep", spec, "--id", ch.id); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	ch.progress(2)
	ch.checkRowsAreTheirOwn()
	if ch.disk != "" {
		ch.fullDisk()
	}
	for range chaosRounds() {
		if ch.sweepEnded() {
			break // the rounds go on while it trains
		}
		ch.killOne()
		ch.progress(2)
		ch.freezeOne()
		ch.progress(2)
		ch.controlStorm()
		ch.progress(2)
		if ch.s3 != nil {
			ch.freezeS3()
			ch.progress(2)
		}
	}
	terminated := ch.terminateAChild()
	ch.temporal.kill9()
	ch.log("Temporal server killed (-9) mid-sweep")
	time.Sleep(2 * time.Second) // an outage of a while, not a synchronisation
	ch.temporal.start(t)
	ch.log("Temporal server restarted")
	if ch.s3 != nil {
		ch.s3.Stop()
		ch.log("S3 server killed (-9)")
		ch.startWorker()
		ch.log("a worker started while S3 is down")
		time.Sleep(2 * time.Second)
		ch.s3.Restart(t)
		ch.log("S3 server restarted")
	}
	cl := ch.client()
	defer cl.Close()
	p := result(t, cl, ch.id, chaosSweepTimeout())
	ch.log("sweep done")
	for _, o := range p.Combos {
		if o.Status != sweep.Completed && !(o.ID() == terminated && o.Status == sweep.Terminated) {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
	}
	if terminated != "" {
		// The sweep again: what completed is skipped, the terminated
		// training resumes from its checkpoints.
		if out, err := ch.starter("--sweep", spec, "--id", ch.id+"-again"); err != nil {
			t.Fatalf("starter again: %v\n%s", err, out)
		}
		p = result(t, cl, ch.id+"-again", chaosSweepTimeout())
		ch.log("sweep run again after %s was terminated: done", terminated)
	}
	for _, o := range p.Combos {
		if o.Status != sweep.Completed && o.Status != sweep.Skipped {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
		dir := filepath.Join(strings.Split(results.RunsPrefix(o.ConfigHash), "/")...)
		for _, f := range []string{"best_model.safetensors", "final_model.safetensors", "final_model.optim.safetensors"} {
			rel := filepath.Join(dir, "cnn", "smallcnn", strconv.Itoa(o.Resolution), f)
			want, err := os.ReadFile(filepath.Join(refStore, rel))
			if err != nil {
				t.Fatalf("reference %s: %v", o.ID(), err)
			}
			if b, err := os.ReadFile(filepath.Join(root, rel)); err != nil || !bytes.Equal(b, want) {
				t.Errorf("%s: %s differs from the uninterrupted run (%v)", o.ID(), f, err)
			}
		}
	}
	checkEverythingVerifies(t, ch.storeURL)
	ch.log("summary: %s", ch.summary())
}

// checkRowsAreTheirOwn: while seeds of one (model, resolution) train side
// by side, each row of the sweep's progress is its own training's (its
// seed, its config), as `starter status` shows them.
func (ch *chaos) checkRowsAreTheirOwn() {
	cl := ch.client()
	defer cl.Close()
	v, err := cl.QueryWorkflow(context.Background(), ch.id, "", workflows.QueryProgress)
	if err != nil {
		ch.t.Fatal(err)
	}
	var p workflows.SweepProgress
	if err := v.Get(&p); err != nil {
		ch.t.Fatal(err)
	}
	hashes := map[string]string{}
	for i, o := range p.Combos {
		if want := uint64(1 + i%2); o.Seed != want { // 24-seed1, 24-seed2, 32-seed1, 32-seed2
			ch.t.Errorf("row %d shows seed %d, want %d", i, o.Seed, want)
		}
		if prev, ok := hashes[o.ConfigHash]; ok && o.ConfigHash != "" {
			ch.t.Errorf("rows %s and %s show the same training %.12s", prev, o.ID(), o.ConfigHash)
		}
		hashes[o.ConfigHash] = o.ID()
	}
	ch.log("rows while training: %d, each its own seed's", len(p.Combos))
}

// sweepEnded says whether the sweep has ended.
func (ch *chaos) sweepEnded() bool {
	cl := ch.client()
	defer cl.Close()
	d, err := cl.DescribeWorkflowExecution(context.Background(), ch.id, "")
	return err == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING &&
		d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
}

// summary is the one line a soak prints: what it did.
func (ch *chaos) summary() string {
	return fmt.Sprintf("%v, %d workers started, %d killed, %d frozen, %d S3 freezes, %d control storms (%d commands), %d children terminated, %d continue-as-new runs of the sweep",
		time.Since(ch.start).Round(time.Second), len(ch.workers), ch.kills, ch.freezes, ch.s3Freezes, ch.storms, ch.commands, ch.terminations, ch.sweepRuns())
}

// sweepRuns counts the sweep workflow's runs (continue-as-new generations).
func (ch *chaos) sweepRuns() int {
	cl := ch.client()
	defer cl.Close()
	resp, err := cl.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", ch.id)})
	if err != nil {
		return -1
	}
	return len(resp.Executions)
}

// controlStorm sends a burst of pause and resume commands, sweep-wide and
// to single combinations, ending resumed.
func (ch *chaos) controlStorm() {
	cl := ch.client()
	defer cl.Close()
	ctx := context.Background()
	n := 4 + ch.rng.IntN(8)
	for i := range n {
		cmd := []string{"pause", "resume"}[i%2]
		target := ch.id
		if ch.rng.IntN(2) == 0 {
			target = ch.id + "/smallcnn@" + []string{"24", "32"}[ch.rng.IntN(2)] + "-seed" + strconv.Itoa(1+ch.rng.IntN(2))
		}
		_ = cl.SignalWorkflow(ctx, target, "", cmd, nil) // a finished or not yet started one refuses
	}
	// The storm ends resumed: the sweep (its last command may have been a
	// pause), then every combination (refused where nothing is paused).
	_ = cl.SignalWorkflow(ctx, ch.id, "", "resume", nil)
	for _, res := range []string{"24", "32"} {
		for _, seed := range []string{"1", "2"} {
			_ = cl.SignalWorkflow(ctx, ch.id+"/smallcnn@"+res+"-seed"+seed, "", "resume", nil)
		}
	}
	ch.storms++
	ch.commands += n
	ch.log("control storm: %d pause/resume commands", n)
}

// freezeS3 stops the S3 server (SIGSTOP) for three heartbeat timeouts:
// it accepts connections and answers nothing.
func (ch *chaos) freezeS3() {
	ch.s3.Freeze(ch.t)
	ch.log("S3 server frozen (SIGSTOP)")
	time.Sleep(9 * time.Second) // three 3 s heartbeat timeouts: the outage under test
	ch.s3.Thaw(ch.t)
	ch.s3Freezes++
	ch.log("S3 server woken (SIGCONT)")
}

// terminateAChild terminates a running combination from the CLI and says
// which ("" if none ran).
func (ch *chaos) terminateAChild() string {
	cl := ch.client()
	defer cl.Close()
	resp, err := cl.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = 'Combination' AND ExecutionStatus = 'Running' AND WorkflowId STARTS_WITH '%s/'", ch.id)})
	if err != nil || len(resp.Executions) == 0 {
		ch.log("no running combination to terminate (%v)", err)
		return ""
	}
	id := resp.Executions[0].Execution.WorkflowId
	bin, _ := temporalBinary()
	if out, err := exec.Command(bin, "workflow", "terminate", "--workflow-id", id, "--reason", "chaos", "--address", ch.temporal.addr).CombinedOutput(); err != nil {
		ch.log("terminate %s: %v %s", id, err, out)
		return ""
	}
	ch.terminations++
	ch.log("combination %s terminated from the CLI", id)
	return strings.TrimPrefix(id, ch.id+"/")
}

// killOne kills a random worker with -9 and starts another.
func (ch *chaos) killOne() {
	live := ch.live()
	w := live[ch.rng.IntN(len(live))]
	w.kill9(ch.t)
	ch.kills++
	ch.log("worker pid %d killed (-9)", w.cmd.Process.Pid)
	ch.startWorker()
	ch.log("a fresh worker started")
}

// freezeOne stops a random worker past the heartbeat timeout, then wakes it.
func (ch *chaos) freezeOne() {
	live := ch.live()
	w := live[ch.rng.IntN(len(live))]
	w.cmd.Process.Signal(syscall.SIGSTOP)
	ch.log("worker pid %d frozen (SIGSTOP)", w.cmd.Process.Pid)
	time.Sleep(5 * time.Second) // past the 3 s heartbeat timeout: the outage under test
	w.cmd.Process.Signal(syscall.SIGCONT)
	ch.freezes++
	ch.log("worker pid %d woken (SIGCONT)", w.cmd.Process.Pid)
}

// fullDisk fills the store's disk until `starter status` shows the
// epochs failing with "no space left on device", then frees it.
func (ch *chaos) fullDisk() {
	filler := filepath.Join(ch.disk, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1M").Run() // ends at ENOSPC
	ch.log("store disk full")
	waitFor(ch.t, "starter status to show the full disk", 3*time.Minute, func() bool {
		out, _ := ch.starter("status", "--id", ch.id)
		return strings.Contains(out, "no space left on device")
	})
	out, _ := ch.starter("status", "--id", ch.id)
	ch.log("starter status while full:\n%s", out)
	os.Remove(filler)
	ch.log("store disk freed")
}

// mountTmpfs mounts a tmpfs of size (e.g. "16m") for the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}
