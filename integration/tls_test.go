package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

const tlsSpec = `name: tls
models: [smallcnn]
resolutions: [16]
epochs: 1
data: fashion-mnist
train_limit: 640
val_limit: 200
seed: 2
hyper: {batch_size: 64, optimizer: sgd, lr: 0.05}
`

// A Temporal server that requires mutual TLS (the dev server behind a TLS
// front that verifies client certificates against a CA made here): a
// worker and a starter given TEMPORAL_TLS_* (client pair, the server's CA,
// the server name it must present) run a sweep through it. A worker given
// the certificate without its key refuses to start and names the missing
// variable.
func TestWorkerOverMutualTLS(t *testing.T) {
	pki := newTestPKI(t, "temporal.resomap.test")
	front := startMTLSFront(t, pki, server.FrontendHostPort())
	tlsEnv := []string{
		"TEMPORAL_ADDRESS=" + front.addr,
		"TEMPORAL_TLS_CLIENT_CERT_PATH=" + pki.clientCert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + pki.clientKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + pki.caCert, "TEMPORAL_TLS_SERVER_NAME=temporal.resomap.test",
	}
	t.Run("half a client pair", func(t *testing.T) {
		cmd := workerCommand(filepath.Join(binDir, "worker"), append(env("tq-tls-half", t.TempDir()),
			"TEMPORAL_ADDRESS="+front.addr, "TEMPORAL_TLS_CLIENT_CERT_PATH="+pki.clientCert))
		out, err := runWithin(t, cmd, time.Minute)
		if err == nil {
			t.Fatalf("the worker started with a certificate and no key:\n%s", out)
		}
		if !strings.Contains(out, "TEMPORAL_TLS_CLIENT_KEY_PATH is not set") {
			t.Errorf("the worker's refusal does not name the missing variable:\n%s", out)
		}
	})
	t.Run("another server's name", func(t *testing.T) {
		cmd := workerCommand(filepath.Join(binDir, "worker"), append(append(env("tq-tls-name", t.TempDir()), tlsEnv...),
			"TEMPORAL_TLS_SERVER_NAME=elsewhere.resomap.test"))
		out, err := runWithin(t, cmd, time.Minute)
		if err == nil {
			t.Fatalf("the worker accepted a server certificate for another name:\n%s", out)
		}
		if !strings.Contains(out, "configuration error") || !strings.Contains(out, "elsewhere.resomap.test") {
			t.Errorf("the worker's refusal does not say why (a configuration error, the name):\n%s", out)
		}
	})
	t.Run("sweep", func(t *testing.T) {
		verified, refused := front.verified.Load(), front.refused.Load()
		storeDir, tq := t.TempDir(), "tq-tls"
		logf, _ := os.CreateTemp(t.TempDir(), "worker-*.log")
		w := workerCommand(filepath.Join(binDir, "worker"), append(env(tq, storeDir), tlsEnv...))
		w.Stdout, w.Stderr = logf, logf
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stopProcess(w)
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("worker log:\n%s", b)
			}
		})
		spec := writeSpec(t, tlsSpec)
		st := exec.Command(filepath.Join(binDir, "starter"), "--sweep", spec, "--id", "sweep-tls")
		st.Env, st.Dir = append(env(tq, storeDir), tlsEnv...), t.TempDir()
		if out, err := st.CombinedOutput(); err != nil {
			t.Fatalf("starter over mTLS: %v\n%s", err, out)
		}
		p := result(t, dial(t), "sweep-tls", 5*time.Minute)
		if o := p.Combos[0]; o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", o.ID(), o.Status, o.Reason)
		}
		if v, r := front.verified.Load()-verified, front.refused.Load()-refused; v < 2 || r != 0 {
			t.Errorf("mTLS front: %d verified clients, %d refused; want the worker's and the starter's, none refused", v, r)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		before := front.refused.Load()
		st := exec.Command(filepath.Join(binDir, "starter"), "status", "--id", "sweep-tls")
		st.Env = append(env("tq-tls", t.TempDir()), "TEMPORAL_ADDRESS="+front.addr,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH="+pki.caCert, "TEMPORAL_TLS_SERVER_NAME=temporal.resomap.test")
		if out, err := runWithin(t, st, time.Minute); err == nil {
			t.Fatalf("a client with no certificate was let in:\n%s", out)
		}
		if front.refused.Load() == before {
			t.Error("the front refused no handshake")
		}
	})
}

// runWithin runs cmd, killing it after limit.
func runWithin(t *testing.T, cmd *exec.Cmd, limit time.Duration) (string, error) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err
}

// testPKI is a CA, a server certificate for one name and a client pair,
// as PEM files.
type testPKI struct {
	caCert, clientCert, clientKey string
	server                        tls.Certificate
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T, serverName string) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "resomap test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	p := testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caCert = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(serverName, x509.ExtKeyUsageServerAuth, []string{serverName})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue("resomap worker", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKey = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mtlsFront terminates TLS, requiring a client certificate from the CA,
// and passes the bytes on to a plain Temporal frontend: to its clients, a
// Temporal server that requires mTLS.
type mtlsFront struct {
	addr              string
	verified, refused atomic.Int64
}

func startMTLSFront(t *testing.T, pki testPKI, backend string) *mtlsFront {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &mtlsFront{addr: l.Addr().String()}
	cfg := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(tls.Server(conn, cfg), backend) }()
		}
	}()
	return f
}

func (f *mtlsFront) serve(conn *tls.Conn, backend string) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		f.refused.Add(1)
		return
	}
	conn.SetDeadline(time.Time{})
	f.verified.Add(1)
	up, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, conn); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(conn, up); conn.CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}
