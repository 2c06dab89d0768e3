package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/internal/temporalx"
)

// A worker started while its S3 store and its Temporal server are both down
// waits for each (a log line per attempt) and starts once they are up.
func TestWorkerStartedBeforeItsDependenciesWaitsForThem(t *testing.T) {
	s3 := s3test.Start(t, t.TempDir())
	s3.CreateBucket(t, "deps")
	s3.Env(t)
	s3.Stop()
	addr := freeAddr(t)

	logf, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	w := startWorkerWithEnv(t, logf, []string{"TEMPORAL_ADDRESS=" + addr, "RESOMAP_STORE=s3://deps/ck"})
	logHas := func(s string) func() bool {
		return func() bool { b, _ := os.ReadFile(logf.Name()); return strings.Contains(string(b), s) }
	}
	waitFor(t, "the worker to wait for the store", time.Minute, logHas("waiting for the store"))
	s3.Restart(t)
	waitFor(t, "the worker to wait for Temporal", 2*time.Minute, logHas("waiting for Temporal"))
	if w.cmd.ProcessState != nil {
		t.Fatal("the worker exited instead of waiting")
	}
	bin, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", ExtraArgs: temporalx.DevServerFlags(),
		ClientOptions: &client.Options{HostPort: addr,
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	waitFor(t, "the worker to start", 2*time.Minute, logHas("worker started"))
}

// freeAddr is a local address nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

// startWorkerWithEnv runs a worker with the test environment overridden
// and extra flags.
func startWorkerWithEnv(t *testing.T, logf *os.File, overrides []string, flags ...string) *workerProc {
	t.Helper()
	w := &workerProc{log: logf}
	w.cmd = workerCommand(filepath.Join(binDir, "worker"), append(env("deps", t.TempDir()), overrides...), flags...)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopProcess(w.cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker log:\n%s", b)
		}
	})
	return w
}
