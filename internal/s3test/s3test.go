// Package s3test runs a real S3 server (versitygw) on a free loopback port
// for tests and benchmarks, and stops it afterwards.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	AccessKey = "resomap-test"
	SecretKey = "resomap-test-secret-key"
)

// Server is a running versitygw.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string // posix backend root: Dir/<bucket>/<key>
	cmd  *exec.Cmd
	bin  string
}

// Binary finds versitygw in $GOBIN, GOPATH/bin or PATH.
func Binary() (string, error) {
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.Join(strings.TrimSpace(string(out)), "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "versitygw"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("versitygw not found: run `make tools` (scripts/install-tools.sh)")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs versitygw on a free port over dir, with the test credentials,
// until the test ends.
func Start(tb testing.TB, dir string) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: needs a versitygw S3 server")
	}
	s, err := Launch(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Launch runs versitygw on a free port over dir; the caller stops it.
func Launch(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, Dir: dir, bin: bin}
	return s, s.start()
}

func (s *Server) start() error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	s.cmd = exec.Command(s.bin, "--port", s.Addr, "--health", "/health", "posix", s.Dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("versitygw on %s did not become healthy", s.Addr)
}

// Stop kills the server (like a crash: no graceful shutdown), frozen or not.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.cmd.Wait()
	}
}

// Freeze stops the server's process (SIGSTOP): its port still accepts
// connections, and nothing answers, like a hung gateway. Thaw wakes it.
//
// It returns once every thread of the server has stopped: SIGSTOP takes
// effect when the kernel next handles the signal, and a thread running on
// another core meanwhile can still answer a request (a stat answered in
// 0.9 ms after Freeze failed CI once).
func (s *Server) Freeze(tb testing.TB) {
	tb.Helper()
	s.signal(tb, syscall.SIGSTOP)
	deadline := time.Now().Add(10 * time.Second)
	for !s.stopped(tb) {
		if time.Now().After(deadline) {
			tb.Fatalf("s3test: server %d not stopped 10 s after SIGSTOP", s.cmd.Process.Pid)
		}
		time.Sleep(time.Millisecond) // polling the threads' state, not a guess at a delay
	}
}

// stopped says whether every thread of the server is in the stopped state
// ('T' in /proc/PID/task/TID/stat).
func (s *Server) stopped(tb testing.TB) bool {
	tb.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", s.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		tb.Fatalf("s3test: reading the server's threads: %v (%d found)", err, len(tasks))
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			return false // a thread that just ended: look again
		}
		// The state follows the command name, which is in parentheses.
		rest := b[strings.LastIndexByte(string(b), ')')+1:]
		if f := strings.Fields(string(rest)); len(f) == 0 || f[0] != "T" {
			return false
		}
	}
	return true
}

// Thaw wakes a frozen server (SIGCONT).
func (s *Server) Thaw(tb testing.TB) { s.signal(tb, syscall.SIGCONT) }

func (s *Server) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Env sets the AWS variables that point the SDK's default chain at the
// server, for the rest of the test.
func (s *Server) Env(tb testing.TB) {
	tb.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	tb.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	tb.Setenv("AWS_REGION", "us-east-1")
	tb.Setenv("AWS_ENDPOINT_URL_S3", "http://"+s.Addr)
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tb.Setenv("AWS_CONFIG_FILE", filepath.Join(tb.TempDir(), "none"))
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(tb.TempDir(), "none"))
	tb.Setenv("RESOMAP_S3_PATH_STYLE", "true")
}

// CreateBucket makes a bucket.
func (s *Server) CreateBucket(tb testing.TB, name string) {
	tb.Helper()
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + s.Addr), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
}
