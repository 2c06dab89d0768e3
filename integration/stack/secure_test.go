//go:build stack

package stack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// The secured stack (docker-compose.secure.yml on top of the local one,
// certificates from make-certs.sh): Temporal refuses a client without a
// certificate the stack's CA signed, the Web UI answers 401 without its
// password, workers hold an S3 account of their own and not the root key,
// and a sweep started with the client certificate completes.
func TestSecuredStack(t *testing.T) {
	requireDockerAndImages(t)
	s := &stack{t: t, project: fmt.Sprintf("resomapsecure%d", os.Getpid()), start: time.Now(), files: []string{"docker-compose.secure.yml"}}
	s.last = s.start
	certs := t.TempDir()
	if out, err := runIn(repo, "bash", "scripts/make-certs.sh", certs); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	s.step("certificates made (scripts/make-certs.sh)")
	uiPassword, rootSecret, workerSecret := secret(), secret(), secret()
	s.temporalPort, s.s3Port, s.uiPort = freePort(t), freePort(t), freePort(t)
	env := strings.Join([]string{
		"POSTGRES_PASSWORD=" + secret(), "S3_ACCESS_KEY=resomap-root", "S3_SECRET_KEY=" + rootSecret,
		"S3_WORKER_ACCESS_KEY=resomap-worker", "S3_WORKER_SECRET_KEY=" + workerSecret, "UI_PASSWORD=" + uiPassword,
		"RESOMAP_CERTS=" + certs, "RESOMAP_WORKER_IMAGE=resomap/worker:local", "RESOMAP_S3_IMAGE=resomap/s3:local",
		"TEMPORAL_PORT=" + s.temporalPort, "TEMPORAL_UI_PORT=" + s.uiPort, "S3_PORT=" + s.s3Port, "RESOMAP_THREADS=1",
	}, "\n") + "\n"
	s.envFile = filepath.Join(t.TempDir(), "secure.env")
	if err := os.WriteFile(s.envFile, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.down)
	s.compose("up", "-d", "--no-build", "--scale", "worker=1")
	s.waitFor("healthy services and a worker", 5*time.Minute, func() bool {
		for _, svc := range []string{"postgresql", "temporal", "s3"} {
			ids := s.containers(s.project, svc)
			if len(ids) != 1 || s.inspect(ids[0], "{{.State.Health.Status}}") != "healthy" {
				return false
			}
		}
		ids := s.containers(s.project, "worker")
		return len(ids) == 1 && s.inspect(ids[0], "{{.State.Running}}") == "true"
	})
	s.step("secured stack healthy (Temporal's health check over mutual TLS)")

	s.checkTemporalRefusesStrangers(certs)
	s.checkUIGate(uiPassword)
	s.checkWorkersHoldTheirOwnS3Account(rootSecret, workerSecret)

	// A sweep through it all: the starter with the client certificate and
	// the workers' account.
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", filepath.Join(certs, "client.pem"))
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", filepath.Join(certs, "client-key.pem"))
	t.Setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", filepath.Join(certs, "ca.pem"))
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", "temporal")
	s.useS3("resomap-worker", workerSecret)
	spec := filepath.Join(t.TempDir(), "secure.yaml")
	if err := os.WriteFile(spec, []byte(`name: secure
models: [smallcnn]
resolutions: [16]
epochs: 1
data: fashion-mnist
train_limit: 512
val_limit: 256
seed: 1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.starter("--sweep", spec, "--id", "sweep-secure", "--wait"); err != nil {
		t.Fatalf("starter --wait through the secured stack: %v\n%s", err, out)
	}
	s.temporal = s.dialTLS(certs, true)
	for _, o := range s.result("sweep-secure", time.Minute).Combos {
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
	}
	s.step("a sweep completed through the secured stack")
}

// checkTemporalRefusesStrangers: no TLS, or TLS without a client
// certificate, is refused; the stack's client certificate is let in.
func (s *stack) checkTemporalRefusesStrangers(certs string) {
	s.t.Helper()
	if c, err := s.dial(client.ConnectionOptions{}); err == nil {
		c.Close()
		s.t.Fatal("Temporal let in a client without TLS")
	}
	noCert := s.tlsConfig(certs, false)
	if c, err := s.dial(client.ConnectionOptions{TLS: noCert}); err == nil {
		c.Close()
		s.t.Fatal("Temporal let in a TLS client without a certificate")
	}
	s.dialTLS(certs, true).Close()
	s.step("Temporal: refused without TLS and without a client certificate; the stack's client certificate gets in")
}

func (s *stack) dial(conn client.ConnectionOptions) (client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return client.DialContext(ctx, client.Options{HostPort: "127.0.0.1:" + s.temporalPort, ConnectionOptions: conn,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
}

func (s *stack) dialTLS(certs string, withCert bool) client.Client {
	s.t.Helper()
	c, err := s.dial(client.ConnectionOptions{TLS: s.tlsConfig(certs, withCert)})
	if err != nil {
		s.t.Fatalf("dial with the client certificate: %v", err)
	}
	return c
}

func (s *stack) tlsConfig(certs string, withCert bool) *tls.Config {
	s.t.Helper()
	ca, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "temporal"}
	if withCert {
		pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "client.pem"), filepath.Join(certs, "client-key.pem"))
		if err != nil {
			s.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// checkUIGate: 401 without the password or with a wrong one; with it, the
// UI and its API (which reaches Temporal over mutual TLS).
func (s *stack) checkUIGate(password string) {
	s.t.Helper()
	base := "http://127.0.0.1:" + s.uiPort
	get := func(path, user, pw string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	s.waitFor("the Web UI behind its gate", 2*time.Minute, func() bool {
		code, page := get("/", "resomap", password)
		if code != http.StatusOK || !strings.Contains(page, "<html") {
			return false
		}
		code, api := get("/api/v1/namespaces/default", "resomap", password)
		return code == http.StatusOK && strings.Contains(api, `"default"`)
	})
	for _, c := range []struct{ user, pw string }{{"", ""}, {"resomap", "wrong"}, {"admin", password}} {
		if code, _ := get("/api/v1/namespaces/default", c.user, c.pw); code != http.StatusUnauthorized {
			s.t.Errorf("the Web UI with user %q password %q: %d, want 401", c.user, c.pw, code)
		}
	}
	s.step("Web UI: 401 without its password; with it, the UI shows namespace default")
}

// checkWorkersHoldTheirOwnS3Account: the root key is in no worker's
// environment, and the workers' account cannot open a bucket the root
// key made.
func (s *stack) checkWorkersHoldTheirOwnS3Account(rootSecret, workerSecret string) {
	s.t.Helper()
	for _, id := range s.containers(s.project, "worker") {
		if env := s.inspect(id, "{{json .Config.Env}}"); strings.Contains(env, rootSecret) {
			s.t.Errorf("worker %s holds the S3 root key", short(id))
		}
	}
	s.useS3("resomap-root", rootSecret)
	if _, err := store.Open(context.Background(), "s3://root-only/x", store.CreateBucket()); err != nil {
		s.t.Fatalf("root key: %v", err)
	}
	s.useS3("resomap-worker", workerSecret)
	if _, err := store.Open(context.Background(), "s3://root-only/x"); err == nil || !strings.Contains(err.Error(), "access denied") {
		s.t.Errorf("the workers' account opened the root's bucket: %v", err)
	}
	s.step("S3: no worker holds the root key; the workers' account cannot open the root's bucket")
}

func (s *stack) useS3(key, secret string) {
	s.t.Setenv("AWS_ACCESS_KEY_ID", key)
	s.t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	s.t.Setenv("AWS_REGION", "us-east-1")
	s.t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:"+s.s3Port)
	s.t.Setenv("RESOMAP_S3_PATH_STYLE", "true")
}

func runIn(dir string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
