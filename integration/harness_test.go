// Package integration runs ResoMap end to end: a real Temporal dev server
// (the CLI binary), real worker processes, the starter binary, libtorch.
package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/workflows"
)

var (
	server   *testsuite.DevServer
	binDir   string
	cacheDir string
)

func temporalBinary() (string, error) {
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return "", err
		}
		gobin = filepath.Join(strings.TrimSpace(string(out)), "bin")
	}
	p := filepath.Join(gobin, "temporal")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("temporal CLI not found in %s or PATH: run `make tools`", gobin)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: -short leaves these tests out: they need a Temporal dev server and worker processes (make test runs them)")
		os.Exit(0)
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "resomap-it-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	binDir, cacheDir = filepath.Join(tmp, "bin"), filepath.Join(tmp, "cache")
	build := exec.Command("go", "build", "-o", binDir+"/", "../worker", "../starter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build binaries: %v\n%s", err, out)
	}
	if os.Getenv("RESOMAP_LIB") == "" {
		os.Setenv("RESOMAP_LIB", torch.LibraryPath())
	}
	bin, err := temporalBinary()
	if err != nil {
		return 0, err
	}
	server, err = testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath:  bin,
		ClientOptions: &client.Options{Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))},
		LogLevel:      "error",
		ExtraArgs:     temporalx.DevServerFlags(),
	})
	if err != nil {
		return 0, fmt.Errorf("start dev server: %w", err)
	}
	defer server.Stop()
	return m.Run(), nil
}

// env is the environment of worker and starter processes in a test.
func env(taskQueue, storeDir string) []string {
	return append(os.Environ(),
		"TEMPORAL_ADDRESS="+server.FrontendHostPort(), "TEMPORAL_NAMESPACE=default",
		"RESOMAP_TASK_QUEUE="+taskQueue, "RESOMAP_STORE=file://"+storeDir, "RESOMAP_DATA_CACHE="+cacheDir)
}

type workerProc struct {
	cmd *exec.Cmd
	log *os.File
}

// startWorker runs a real worker process, with extra flags if given.
func startWorker(t testing.TB, taskQueue, storeDir string, flags ...string) *workerProc {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := workerCommand(filepath.Join(binDir, "worker"), env(taskQueue, storeDir), flags...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProc{cmd: cmd, log: logf}
	t.Cleanup(func() {
		stopProcess(cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker log:\n%s", b)
		}
	})
	return w
}

// workerCommand is a worker process with the tests' usual flags.
func workerCommand(bin string, environ []string, flags ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"--threads", "2", "--stop-timeout", "30s"}, flags...)...)
	cmd.Env = environ // later entries win over earlier ones
	return cmd
}

// stopProcess asks a worker to stop (SIGTERM) and kills it if it has not
// exited within 45 s, so that a stuck worker can never hang the suite.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (w *workerProc) kill9(t testing.TB) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w.cmd.Wait()
}

// starter runs the starter binary and returns its output.
func starter(t testing.TB, taskQueue, storeDir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "starter"), args...)
	cmd.Env = env(taskQueue, storeDir)
	cmd.Dir = t.TempDir() // --wait writes reports/<sweep> here
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func dial(t *testing.T) client.Client { return dialTB(t) }

func dialTB(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: server.FrontendHostPort(), Namespace: "default",
		Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds or the deadline passes: the condition
// is the synchronisation, the interval only bounds the polling rate.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeSpec writes a sweep YAML file for a test.
func writeSpec(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rewriteHeartbeat sets a spec file's heartbeat timeout.
func rewriteHeartbeat(t testing.TB, specPath string, seconds int) string {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "heartbeat_timeout_seconds: 3", fmt.Sprintf("heartbeat_timeout_seconds: %d", seconds), 1)
	return writeSpec(t, s)
}

// outcomeOf queries a combination workflow's progress.
func outcomeOf(t *testing.T, c client.Client, id string) sweep.Outcome {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), id, "", workflows.QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var o sweep.Outcome
	if err := v.Get(&o); err != nil {
		t.Fatal(err)
	}
	return o
}

// exitCode is a command's exit status from its error (0: none; -1: it did
// not exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
