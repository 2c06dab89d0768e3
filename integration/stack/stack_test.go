//go:build stack

// Package stack starts the team stack for real (make test-stack): the
// images `make images` built, docker-compose.yml with
// docker-compose.local.yml on a compose project of its own, three worker
// containers, and a sweep of the default preset through kills, network
// partitions, restarts and a paused S3 server. It needs a Docker engine and
// root; `go test ./...` does not build it (the stack build tag).
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// repo is the repository's root, where docker-compose.yml is.
const repo = "../.."

// heartbeatSeconds replaces the default preset's 60 s, so that a cut-off
// worker is given up in seconds; the config (and its hash) is unchanged.
const heartbeatSeconds = 10

// stack is one compose project: its files, ports and clients.
type stack struct {
	t                    *testing.T
	project, envFile     string
	files                []string // compose files, after docker-compose.yml and docker-compose.local.yml
	temporalPort, s3Port string
	uiPort               string
	start                time.Time
	last                 time.Time // the end of the previous step
	temporal             client.Client
	store                store.Store
	faults               []string
}

func TestStack(t *testing.T) {
	requireDockerAndImages(t)
	s := &stack{t: t, project: fmt.Sprintf("resomapstack%d", os.Getpid()), start: time.Now()}
	s.last = s.start
	s.refusesPlaceholders()
	s.writeEnv()
	t.Cleanup(s.down)
	s.compose("up", "-d", "--no-build", "--scale", "worker=3")
	s.step("docker compose up -d --scale worker=3 (returned)")

	spec := writeSpec(t)
	// The reference trains meanwhile, on this host: other processes,
	// other timing, the same numbers.
	reference := startReference(t, spec)
	s.waitHealthy()
	s.step("stack healthy")
	s.checkWebUI()
	s.connect()
	if out, err := s.starter("--sweep", spec, "--id", "sweep-stack"); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	s.waitFor("the first epoch", 5*time.Minute, func() bool { return s.epochsDone() >= 1 })
	s.step("first epoch done (from up: " + time.Since(s.start).Round(time.Second).String() + ")")

	s.killAWorker()
	s.partitionFromTemporal()
	s.partitionFromS3()
	s.restart("temporal")
	s.restart("postgresql")
	s.pauseS3()

	p := s.result("sweep-stack", 20*time.Minute)
	s.step("sweep done")
	for _, o := range p.Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
	}
	s.checkEverythingVerifies()
	ref := reference()
	s.step("the uninterrupted reference run (on this host, meanwhile) done")
	s.checkSameWeights(p, ref)
	s.step("every checkpoint verifies; best/final weights equal the reference's")

	s.compose("down")
	s.step("docker compose down (volumes kept)")
	s.compose("up", "-d", "--no-build", "--scale", "worker=3")
	s.waitHealthy()
	s.connect()
	s.step("docker compose up again")
	if again := s.result("sweep-stack", time.Minute); len(again.Combos) != len(p.Combos) {
		t.Fatalf("after down/up the finished sweep has %d combinations, want %d", len(again.Combos), len(p.Combos))
	}
	if out, err := s.starter("--sweep", spec, "--id", "sweep-stack-again"); err != nil {
		t.Fatalf("starter again: %v\n%s", err, out)
	}
	for _, o := range s.result("sweep-stack-again", 5*time.Minute).Combos {
		if o.Status != sweep.Skipped {
			t.Errorf("rerun after down/up: %s %s, want skipped", o.ID(), o.Status)
		}
	}
	s.step("the finished sweep is there; a rerun skips everything")
	s.reportThroughCompose()
	t.Logf("faults: %s", strings.Join(s.faults, "; "))
}

// requireDockerAndImages: the stack tests drive Docker as root, on the
// images `make images` built.
func requireDockerAndImages(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the stack test drives Docker: run it as root (make test-stack; CI does)")
	}
	for _, img := range []string{"postgres", "temporal", "temporal-ui", "s3", "worker"} {
		if exec.Command("docker", "image", "inspect", "resomap/"+img+":local").Run() != nil {
			t.Fatalf("image resomap/%s:local is missing: run `make images`", img)
		}
	}
}

// refusesPlaceholders: `up` with the example .env starts nothing and says
// which variable to set.
func (s *stack) refusesPlaceholders() {
	s.t.Helper()
	project := s.project + "example"
	cmd := exec.Command("docker-compose", "-p", project, "-f", "docker-compose.yml", "-f", "docker-compose.local.yml",
		"--env-file", ".env.example", "up", "-d", "--no-build")
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err == nil {
		exec.Command("docker-compose", "-p", project, "down", "-v").Run()
		s.t.Fatalf("docker compose up accepted the example .env:\n%s", out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "POSTGRES_PASSWORD is empty. Set your own in .env") {
		s.t.Errorf("want one line naming POSTGRES_PASSWORD, got:\n%s", out)
	}
	if ids := s.containers(project, ""); len(ids) != 0 {
		s.t.Errorf("the refused up left %d containers", len(ids))
	}
	s.step("up with the example .env refused: " + strings.TrimSpace(string(out)))
}

func (s *stack) writeEnv() {
	s.t.Helper()
	s.temporalPort, s.s3Port, s.uiPort = freePort(s.t), freePort(s.t), freePort(s.t)
	env := strings.Join([]string{
		"POSTGRES_PASSWORD=" + secret(), "S3_ACCESS_KEY=resomap-stack", "S3_SECRET_KEY=" + secret(),
		"TEMPORAL_PORT=" + s.temporalPort, "TEMPORAL_UI_PORT=" + s.uiPort, "S3_PORT=" + s.s3Port,
		// One thread each, as the reference: the same numbers.
		"RESOMAP_THREADS=1",
	}, "\n") + "\n"
	s.envFile = filepath.Join(s.t.TempDir(), "stack.env")
	if err := os.WriteFile(s.envFile, []byte(env), 0o600); err != nil {
		s.t.Fatal(err)
	}
	for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "S3_ACCESS_KEY" {
			s.t.Setenv("AWS_ACCESS_KEY_ID", v)
		}
		if k == "S3_SECRET_KEY" {
			s.t.Setenv("AWS_SECRET_ACCESS_KEY", v)
		}
	}
	s.t.Setenv("AWS_REGION", "us-east-1")
	s.t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:"+s.s3Port)
	s.t.Setenv("RESOMAP_S3_PATH_STYLE", "true")
}

// compose runs docker-compose on this project.
func (s *stack) compose(args ...string) string {
	s.t.Helper()
	out, err := s.composeErr(args...)
	if err != nil {
		s.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *stack) composeErr(args ...string) (string, error) {
	base := []string{"-p", s.project, "-f", "docker-compose.yml", "-f", "docker-compose.local.yml"}
	for _, f := range s.files {
		base = append(base, "-f", f)
	}
	cmd := exec.Command("docker-compose", append(append(base, "--env-file", s.envFile), args...)...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// down removes everything the test made, even after a failure (printing
// the services' logs then).
func (s *stack) down() {
	if s.temporal != nil {
		s.temporal.Close()
	}
	if s.t.Failed() {
		out, _ := s.composeErr("logs", "--no-color", "--tail", "60")
		s.t.Logf("service logs:\n%s", out)
	}
	out, err := s.composeErr("down", "-v", "--remove-orphans", "--timeout", "5")
	if err != nil {
		s.t.Errorf("docker compose down -v: %v\n%s", err, out)
	}
	if left := s.containers(s.project, ""); len(left) != 0 {
		s.t.Errorf("containers left after down -v: %v", left)
	}
	s.t.Logf("torn down (down -v) after %s", time.Since(s.start).Round(time.Second))
}

// step prints what was done and how long it took.
func (s *stack) step(what string) {
	now := time.Now()
	s.t.Logf("[%6.1fs] %s (%.1f s)", now.Sub(s.start).Seconds(), what, now.Sub(s.last).Seconds())
	s.last = now
}

func (s *stack) fault(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.faults = append(s.faults, msg)
	s.step(msg)
}

// containers lists a project's containers (of one service, or all).
func (s *stack) containers(project, service string) []string {
	args := []string{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + project}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		s.t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

func (s *stack) docker(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitHealthy waits for every service's health check, and for the three
// workers to run.
func (s *stack) waitHealthy() {
	s.waitFor("healthy services", 5*time.Minute, func() bool {
		for _, svc := range []string{"postgresql", "temporal", "s3"} {
			ids := s.containers(s.project, svc)
			if len(ids) != 1 || s.inspect(ids[0], "{{.State.Health.Status}}") != "healthy" {
				return false
			}
		}
		n := 0
		for _, id := range s.containers(s.project, "worker") {
			if s.inspect(id, "{{.State.Running}}") == "true" {
				n++
			}
		}
		return n == 3
	})
}

// checkWebUI: the Web UI answers on its port and reaches Temporal (its
// API lists the namespace).
func (s *stack) checkWebUI() {
	s.t.Helper()
	base := "http://127.0.0.1:" + s.uiPort
	s.waitFor("the Web UI", 2*time.Minute, func() bool {
		page, err := httpGet(base + "/")
		if err != nil || !strings.Contains(page, "<html") {
			return false
		}
		api, err := httpGet(base + "/api/v1/namespaces/default")
		return err == nil && strings.Contains(api, `"default"`)
	})
	s.step("Web UI at " + base + " shows namespace default")
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func (s *stack) inspect(id, format string) string {
	out, _ := exec.Command("docker", "inspect", "-f", format, id).Output()
	return strings.TrimSpace(string(out))
}

func (s *stack) connect() {
	s.t.Helper()
	if s.temporal != nil {
		s.temporal.Close()
	}
	c, err := client.Dial(client.Options{HostPort: "127.0.0.1:" + s.temporalPort,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))})
	if err != nil {
		s.t.Fatal(err)
	}
	s.temporal = c
	// The first worker creates the bucket.
	var err2 error
	s.waitFor("the workers to create the bucket", 2*time.Minute, func() bool {
		s.store, err2 = store.Open(context.Background(), "s3://resomap/checkpoints")
		return err2 == nil
	})
}

// starter runs build/starter from this host against the stack.
func (s *stack) starter(args ...string) (string, error) {
	cmd := exec.Command(built("starter"), args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS=127.0.0.1:"+s.temporalPort, "TEMPORAL_NAMESPACE=default",
		"RESOMAP_TASK_QUEUE=resomap", "RESOMAP_STORE=s3://resomap/checkpoints")
	cmd.Dir = s.t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *stack) result(id string, timeout time.Duration) workflows.SweepProgress {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var p workflows.SweepProgress
	if err := s.temporal.GetWorkflow(ctx, id, "").Get(ctx, &p); err != nil {
		s.t.Fatalf("sweep %s: %v", id, err)
	}
	return p
}

// epochsDone is how many epochs the sweep has finished (0 if it cannot
// say now: the server may be restarting).
func (s *stack) epochsDone() int {
	v, err := s.temporal.QueryWorkflow(context.Background(), "sweep-stack", "", workflows.QueryProgress)
	if err != nil {
		return 0
	}
	var p workflows.SweepProgress
	if v.Get(&p) != nil {
		return 0
	}
	n := 0
	for _, o := range p.Combos {
		n += o.EpochsDone
	}
	return n
}

// training is an epoch running now: its combination, its worker's
// container and how far it is.
type training struct {
	child, container string
	hb               workflows.Heartbeat
	attempt          int32
}

// running finds the epochs that run now and the containers that run them.
func (s *stack) running() []training {
	v, err := s.temporal.QueryWorkflow(context.Background(), "sweep-stack", "", workflows.QueryProgress)
	if err != nil {
		return nil
	}
	var p workflows.SweepProgress
	if v.Get(&p) != nil {
		return nil
	}
	hosts, started := map[string]string{}, map[string]time.Time{}
	for _, id := range s.containers(s.project, "worker") {
		f := strings.Fields(s.inspect(id, "{{.Config.Hostname}} {{.State.Running}} {{.State.StartedAt}}"))
		if len(f) == 3 && f[1] == "true" {
			hosts[f[0]] = id
			started[id], _ = time.Parse(time.RFC3339Nano, f[2])
		}
	}
	var out []training
	for _, o := range p.Combos {
		child := "sweep-stack/" + o.ID()
		d, err := s.temporal.DescribeWorkflowExecution(context.Background(), child, "")
		if err != nil {
			continue
		}
		for _, pa := range d.PendingActivities {
			if pa.ActivityType.GetName() != "TrainEpoch" || pa.HeartbeatDetails == nil ||
				pa.State != enumspb.PENDING_ACTIVITY_STATE_STARTED {
				continue
			}
			// The SDK's identity is pid@host@…; a container's host name is
			// its ID. An attempt that started before its container did is a
			// killed incarnation's, not yet timed out.
			parts := strings.Split(pa.LastWorkerIdentity, "@")
			if len(parts) < 2 || hosts[parts[1]] == "" || pa.LastStartedTime.AsTime().Before(started[hosts[parts[1]]]) {
				continue
			}
			tr := training{child: child, container: hosts[parts[1]], attempt: pa.Attempt}
			converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &tr.hb)
			out = append(out, tr)
		}
	}
	return out
}

// midEpoch waits for an epoch that is well under way and not near its end.
func (s *stack) midEpoch() training {
	s.t.Helper()
	var got training
	s.waitFor("an epoch under way", 5*time.Minute, func() bool {
		for _, tr := range s.running() {
			if tr.hb.Of > 0 && tr.hb.Done >= 5 && tr.hb.Done < tr.hb.Of*3/4 {
				got = tr
				return true
			}
		}
		return false
	})
	return got
}

// progress waits until the sweep has finished one more epoch.
func (s *stack) progress() {
	s.t.Helper()
	n := s.epochsDone()
	s.waitFor("one more epoch", 10*time.Minute, func() bool {
		m := s.epochsDone()
		return m > n || s.ended()
	})
}

func (s *stack) ended() bool {
	d, err := s.temporal.DescribeWorkflowExecution(context.Background(), "sweep-stack", "")
	return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
}

func (s *stack) killAWorker() {
	tr := s.midEpoch()
	s.docker("kill", tr.container)
	s.fault("docker kill %s mid-epoch (%s, step %d of %d)", short(tr.container), tr.child, tr.hb.Done, tr.hb.Of)
	// The restart policy applies to a crash, not to `docker kill`; a
	// supervisor (or an operator) starts it again.
	s.docker("start", tr.container)
	s.progress()
}

// partitionFromTemporal cuts a training worker off the control network
// (it still reaches S3) right after it stored a checkpoint, for longer
// than the heartbeat timeout: the server gives its attempt up, another
// worker resumes it, and the cut-off worker stores nothing after the cut.
func (s *stack) partitionFromTemporal() {
	s.t.Helper()
	tr := s.midEpoch()
	host := s.inspect(tr.container, "{{.Config.Hostname}}")
	before := s.snapshot()
	s.waitFor("a fresh checkpoint stored by "+short(tr.container), 2*time.Minute, func() bool {
		for k := range s.snapshot() {
			if _, ok := before[k]; ok {
				continue
			}
			if _, isRecord := checkpoint.ParseKey(k); isRecord && strings.HasPrefix(s.writer(k), host+"/") {
				return true
			}
		}
		return false
	})
	atCut := s.snapshot()
	network := s.project + "_control"
	s.docker("network", "disconnect", network, tr.container)
	s.fault("docker network disconnect %s from Temporal mid-epoch (%s, step %d of %d)", short(tr.container), tr.child, tr.hb.Done, tr.hb.Of)
	s.waitFor("the server to give the cut-off attempt up", 3*time.Minute, func() bool {
		for _, now := range s.running() {
			if now.child == tr.child && (now.attempt > tr.attempt || now.container != tr.container) {
				return true
			}
		}
		return false
	})
	s.step("its attempt was given up and retried elsewhere")
	s.waitFor("the cut-off attempt to stop", 3*time.Minute, func() bool {
		logs, _ := exec.Command("docker", "logs", tr.container).CombinedOutput()
		return bytes.Contains(logs, []byte("superseded"))
	})
	written := s.writtenSince(atCut, tr.container)
	s.docker("network", "connect", network, tr.container)
	s.step("the cut-off attempt gave up; reconnected")
	if len(written) > 0 {
		s.t.Errorf("the worker cut off from Temporal stored %v after the cut", written)
	}
	s.progress()
}

// snapshot is every object in the store and its modification time.
func (s *stack) snapshot() map[string]time.Time {
	infos, err := s.store.List(context.Background(), "")
	if err != nil {
		return nil
	}
	out := map[string]time.Time{}
	for _, in := range infos {
		out[in.Key] = in.ModTime
	}
	return out
}

// writtenSince lists the objects that container wrote after the snapshot
// (its writer ID is in each object's metadata).
func (s *stack) writtenSince(before map[string]time.Time, container string) []string {
	host := s.inspect(container, "{{.Config.Hostname}}")
	var out []string
	for k, mod := range s.snapshot() {
		if old, ok := before[k]; ok && old.Equal(mod) {
			continue
		}
		if strings.HasPrefix(s.writer(k), host+"/") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// reportThroughCompose writes the sweep's report as the README says, with
// the compose file's starter service, into the repository's reports/.
func (s *stack) reportThroughCompose() {
	s.t.Helper()
	name := "stack-test-" + s.project
	dir := filepath.Join(repo, "reports", name)
	s.t.Cleanup(func() { os.RemoveAll(dir) })
	s.compose("run", "--rm", "starter", "report", "--sweep", "default", "--out", "reports/"+name)
	for _, f := range []string{"index.html", "results.csv", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			s.t.Errorf("docker compose run --rm starter report: %v", err)
		}
	}
	s.step("docker compose run --rm starter report --sweep default: reports/" + name + "/index.html")
}

// writer is who stored an object ("" if it cannot say).
func (s *stack) writer(key string) string {
	in, err := s.store.Stat(context.Background(), key)
	if err != nil {
		return ""
	}
	return in.Writer
}

// partitionFromS3 cuts a training worker off the store for a while.
func (s *stack) partitionFromS3() {
	tr := s.midEpoch()
	network := s.project + "_store"
	s.docker("network", "disconnect", network, tr.container)
	s.fault("docker network disconnect %s from S3 mid-epoch (%s)", short(tr.container), tr.child)
	time.Sleep(3 * heartbeatSeconds * time.Second / 2) // an outage of a while, not a synchronisation
	s.docker("network", "connect", network, tr.container)
	s.step("reconnected to S3")
	s.progress()
}

func (s *stack) restart(service string) {
	s.midEpoch()
	ids := s.containers(s.project, service)
	s.docker(append([]string{"restart", "--time", "5"}, ids...)...)
	s.fault("docker restart %s mid-epoch", service)
	s.waitHealthy()
	s.progress()
}

func (s *stack) pauseS3() {
	s.midEpoch()
	ids := s.containers(s.project, "s3")
	s.docker("pause", ids[0])
	s.fault("docker pause s3 mid-epoch")
	time.Sleep(3 * heartbeatSeconds * time.Second / 2) // past the heartbeat timeout, not a synchronisation
	s.docker("unpause", ids[0])
	s.step("docker unpause s3")
}

func (s *stack) waitFor(what string, timeout time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEverythingVerifies loads every checkpoint record in the store.
func (s *stack) checkEverythingVerifies() {
	s.t.Helper()
	ctx := context.Background()
	infos, err := s.store.List(ctx, "runs/")
	if err != nil {
		s.t.Fatal(err)
	}
	repo := checkpoint.Repo{Store: s.store}
	n := 0
	for _, in := range infos {
		if _, ok := checkpoint.ParseKey(in.Key); !ok {
			continue
		}
		n++
		if _, err := repo.Load(ctx, in.Key); err != nil {
			s.t.Errorf("stored checkpoint does not verify: %v", err)
		}
		if w := s.writer(in.Key); w == "" {
			s.t.Errorf("%s names no writer: the partition check would see nothing", in.Key)
		}
	}
	if n == 0 {
		s.t.Error("no checkpoints in the stack's store")
	}
	s.t.Logf("%d checkpoint records verify", n)
}

// checkSameWeights: best and final weights equal the reference run's.
func (s *stack) checkSameWeights(p workflows.SweepProgress, refStore string) {
	s.t.Helper()
	for _, o := range p.Combos {
		dir := results.RunsPrefix(o.ConfigHash) + "/cnn/smallcnn/" + strconv.Itoa(o.Resolution)
		for _, f := range []string{"best_model.safetensors", "final_model.safetensors", "final_model.optim.safetensors"} {
			want, err := os.ReadFile(filepath.Join(refStore, filepath.FromSlash(dir), f))
			if err != nil {
				s.t.Fatalf("reference %s: %v", o.ID(), err)
			}
			got, err := store.ReadAll(context.Background(), s.store, dir+"/"+f)
			if err != nil || !bytes.Equal(got, want) {
				s.t.Errorf("%s: %s differs from the uninterrupted run (%v)", o.ID(), f, err)
			}
		}
	}
}

// writeSpec is the default preset, its heartbeat timeout shortened and
// five epochs instead of three, so that every fault lands mid-epoch.
func writeSpec(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "sweep", "presets", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(string(b), "heartbeat_timeout_seconds: 60", "heartbeat_timeout_seconds: "+strconv.Itoa(heartbeatSeconds), 1)
	spec = strings.Replace(spec, "\nepochs: 3\n", "\nepochs: 5\n", 1)
	if strings.Count(spec, "heartbeat_timeout_seconds: "+strconv.Itoa(heartbeatSeconds)) != 1 || !strings.Contains(spec, "\nepochs: 5\n") {
		t.Fatal("the default preset no longer has heartbeat_timeout_seconds: 60 and epochs: 3 to change")
	}
	path := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startReference starts the same sweep, uninterrupted, on this host (a
// Temporal dev server, one worker with one thread, a file store); the
// function it returns waits for it and returns the store's folder.
func startReference(t *testing.T, spec string) func() string {
	t.Helper()
	bin, err := exec.LookPath("temporal")
	if err != nil {
		t.Fatal("the temporal CLI is not on PATH: run `make tools`")
	}
	addr := "127.0.0.1:" + freePort(t)
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", ExtraArgs: temporalx.DevServerFlags(),
		ClientOptions: &client.Options{HostPort: addr,
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	dir := t.TempDir()
	env := append(os.Environ(), "TEMPORAL_ADDRESS="+addr, "RESOMAP_TASK_QUEUE=ref", "RESOMAP_STORE=file://"+dir,
		"RESOMAP_DATA_CACHE="+t.TempDir())
	w := exec.Command(built("worker"), "--threads", "1")
	w.Env = env
	var wlog bytes.Buffer
	w.Stdout, w.Stderr = &wlog, &wlog
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	st := exec.Command(built("starter"), "--sweep", spec, "--id", "sweep-ref")
	st.Env, st.Dir = env, t.TempDir()
	if out, err := st.CombinedOutput(); err != nil {
		t.Fatalf("reference starter: %v\n%s", err, out)
	}
	// Its result, not `--wait`'s live queries: a worker with one thread
	// on a loaded machine may answer a query late, never a result.
	return func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		var p workflows.SweepProgress
		if err := srv.Client().GetWorkflow(ctx, "sweep-ref", "").Get(ctx, &p); err != nil {
			t.Fatalf("reference run: %v\nworker:\n%s", err, wlog.String())
		}
		for _, o := range p.Combos {
			if o.Status != sweep.Completed {
				t.Fatalf("reference run: %s %s (%s)", o.ID(), o.Status, o.Reason)
			}
		}
		return dir
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func secret() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// built is a command make built, by absolute path (commands run elsewhere).
func built(name string) string {
	p, err := filepath.Abs(filepath.Join(repo, "build", name))
	if err != nil {
		panic(err)
	}
	return p
}

func short(id string) string { return id[:min(12, len(id))] }
