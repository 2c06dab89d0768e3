package pretrained_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/confine"
	"github.com/resomap/resomap/internal/iowatch"
	"github.com/resomap/resomap/pretrained"
)

// stallingServer sends its headers and first bytes, then nothing until the
// test ends (a weights server that hangs mid-download).
func stallingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("first bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

// watcher counts what a download tells an activity's heartbeater.
type watcher struct {
	mu              sync.Mutex
	waits, advances int
	advanced        chan struct{} // nil, or told of every advance it can take
}

func (w *watcher) Begin() func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.waits--
	}
}

func (w *watcher) Advance() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advances++
	select {
	case w.advanced <- struct{}{}:
	default:
	}
}

// A server that sends headers and stalls: the download is given up after
// the idle bound with the reason, its wait and first bytes told to the
// caller's watcher (so an activity's stall detector sees it too), and a
// cancel of the caller's context stops it at once.
func TestStalledDownloadIsGivenUpAndCancellable(t *testing.T) {
	srv := stallingServer(t)
	w := &watcher{}
	ctx := iowatch.With(context.Background(), w)
	f := pretrained.Fetcher{CacheDir: t.TempDir(), IdleTimeout: time.Second}
	t0 := time.Now()
	_, err := f.Fetch(ctx, srv.URL+"/w/model.pth")
	if err == nil || !strings.Contains(err.Error(), "no byte for 1s") {
		t.Fatalf("stalled download: %v, want the idle bound's reason", err)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("given up after %v", took)
	}
	if w.advances == 0 || w.waits != 0 {
		t.Errorf("watcher: %d advances, %d waits open; want the first bytes told and the wait ended", w.advances, w.waits)
	}
	if left, _ := filepath.Glob(filepath.Join(f.CacheDir, "*", "*")); len(left) > 0 {
		t.Errorf("a stalled download left %v", left)
	}

	f.IdleTimeout = time.Hour
	w = &watcher{advanced: make(chan struct{}, 1)}
	cctx, cancel := context.WithCancel(iowatch.With(context.Background(), w))
	done := make(chan error, 1)
	go func() { _, err := f.Fetch(cctx, srv.URL+"/w/other.pth"); done <- err }()
	<-w.advanced // the first bytes arrived; the server stalls now
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled download: %v, want context.Canceled", err)
	}
}

// The size limit holds whether the server declares the size or not, and
// a refusal is ErrRefused (not retried).
func TestDownloadOverTheLimitIsRefused(t *testing.T) {
	big := strings.Repeat("x", 5000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked.pth" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		w.Write([]byte(big))
	}))
	defer srv.Close()
	for _, p := range []string{"/declared.pth", "/chunked.pth"} {
		f := pretrained.Fetcher{CacheDir: t.TempDir(), MaxBytes: 4096}
		if _, err := f.Fetch(context.Background(), srv.URL+p); !errors.Is(err, pretrained.ErrRefused) || !strings.Contains(err.Error(), "4096") {
			t.Errorf("%s: %v, want ErrRefused naming the limit", p, err)
		}
		f.MaxBytes = 5000
		if _, err := f.Fetch(context.Background(), srv.URL+p); err != nil {
			t.Errorf("%s at the limit: %v", p, err)
		}
	}
}

// An allow-list holds for the URL and every redirect; credentials in an
// URL and link-local addresses are refused; a missing file is ErrMissing.
func TestDownloadsStayWhereTheWorkerAllows(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/elsewhere.pth":
			http.Redirect(w, r, "http://localhost.invalid/x.pth", http.StatusFound)
		case "/ok.pth":
			gets.Add(1)
			w.Write([]byte("weights"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := pretrained.Fetcher{CacheDir: t.TempDir(), AllowHosts: []string{"127.0.0.1"}}
	ctx := context.Background()
	if _, err := f.Fetch(ctx, srv.URL+"/ok.pth"); err != nil || gets.Load() != 1 {
		t.Fatalf("allowed host: %v (%d gets)", err, gets.Load())
	}
	if _, err := f.Fetch(ctx, srv.URL+"/elsewhere.pth"); !errors.Is(err, pretrained.ErrRefused) || !strings.Contains(err.Error(), "localhost.invalid") {
		t.Errorf("redirect off the list: %v, want ErrRefused naming the host", err)
	}
	f.AllowHosts = []string{".example.com"}
	if _, err := f.Fetch(ctx, srv.URL+"/ok.pth"); !errors.Is(err, pretrained.ErrRefused) || gets.Load() != 1 {
		t.Errorf("host off the list: %v (%d gets), want ErrRefused before any request", err, gets.Load())
	}
	f.AllowHosts = nil
	if _, err := f.Fetch(ctx, srv.URL+"/missing.pth"); !errors.Is(err, pretrained.ErrMissing) {
		t.Errorf("404: %v, want ErrMissing", err)
	}
	withUser := strings.Replace(srv.URL, "http://", "http://me:s3cret@", 1) + "/ok.pth"
	if _, err := f.Fetch(ctx, withUser); !errors.Is(err, pretrained.ErrRefused) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("credentials in the URL: %v, want ErrRefused without the secret", err)
	}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/iam.pth", "http://[fe80::1%25eth0]/w.pth",
		"http://[fd00:ec2::254]/latest/w.pth", "http://100.100.100.200/w.pth", "http://[::ffff:169.254.169.254]/w.pth"} {
		if _, err := f.Fetch(ctx, u); !errors.Is(err, pretrained.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", u, err)
		}
	}
	// Through a proxy the dial sees the proxy: the target is checked first.
	t.Setenv("HTTP_PROXY", srv.URL)
	proxied := pretrained.Fetcher{CacheDir: t.TempDir(), Client: pretrained.NewClient()}
	if _, err := proxied.Fetch(ctx, "http://169.254.169.254/latest/meta-data/iam.pth"); !errors.Is(err, pretrained.ErrRefused) {
		t.Errorf("through a proxy: %v, want ErrRefused", err)
	}
}

// A failed request's error (which Go's client builds with the URL) shows a
// presigned URL's query elided.
func TestDownloadErrorsHideTheQuery(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	f := pretrained.Fetcher{CacheDir: t.TempDir()}
	_, err := f.Fetch(context.Background(), addr+"/w.pth?X-Amz-Signature=SECRET")
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("a refused connection: %v; want an error without the signature", err)
	}
}

// Local weights outside the worker's roots are refused before a byte is
// read (the error shows none).
func TestLocalWeightsStayInRoots(t *testing.T) {
	inside, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{inside, outside} {
		if err := os.WriteFile(filepath.Join(d, "w.pth"), []byte("secret bytes"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := pretrained.Fetcher{Roots: confine.Roots{inside}}
	if _, err := f.Fetch(context.Background(), filepath.Join(inside, "w.pth")); err != nil {
		t.Errorf("inside: %v", err)
	}
	if _, err := f.Fetch(context.Background(), filepath.Join(outside, "none.pth")); !errors.Is(err, pretrained.ErrRefused) {
		t.Errorf("a missing file outside: %v, want ErrRefused as for one that exists", err)
	}
	_, err := f.Fetch(context.Background(), filepath.Join(outside, "w.pth"))
	if !errors.Is(err, pretrained.ErrRefused) || strings.Contains(err.Error(), "secret") {
		t.Errorf("outside: %v, want ErrRefused", err)
	}
}

// Local weights must be a regular file within the size limit: /dev/zero
// would be hashed for ever, a FIFO blocks its reader.
func TestLocalWeightsAreBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "w.pth")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pth")
	if err := os.WriteFile(big, make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	f := pretrained.Fetcher{MaxBytes: 1024}
	for _, p := range []string{"/dev/zero", fifo, big} {
		if _, err := f.Fetch(context.Background(), p); !errors.Is(err, pretrained.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", p, err)
		}
	}
}

// A server that drips bytes, each in time for the idle bound, is given up
// once a window of the download moved less than the minimum rate; a
// download over the minimum is not, however many windows it takes.
func TestTrickleDownloadIsGivenUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/steady.pth" {
			for range 8 { // 8 x 32 KiB, paced: about 640 KiB/s
				w.Write(make([]byte, 32<<10))
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		w.Header().Set("Content-Length", "1000000")
		for {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond): // 50 bytes/s, a byte well within the idle bound
			}
		}
	}))
	defer srv.Close()
	f := pretrained.Fetcher{CacheDir: t.TempDir(), IdleTimeout: time.Second, MinRate: 1000, RateWindow: 100 * time.Millisecond}
	t0 := time.Now()
	_, err := f.Fetch(context.Background(), srv.URL+"/trickle.pth")
	if err == nil || !strings.Contains(err.Error(), "under this worker's minimum of 1000") {
		t.Fatalf("trickling download: %v, want the minimum rate's reason", err)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("given up after %v", took)
	}
	if left, _ := filepath.Glob(filepath.Join(f.CacheDir, "*", "*")); len(left) > 0 {
		t.Errorf("a given-up download left %v", left)
	}
	got, err := f.Fetch(context.Background(), srv.URL+"/steady.pth")
	if err != nil {
		t.Fatalf("a download over the minimum rate: %v", err)
	}
	if fi, err := os.Stat(got.Path); err != nil || fi.Size() != 8*32<<10 {
		t.Errorf("steady download: %v, %v", fi, err)
	}
}

// An allow-list entry with a port allows that port only; without one,
// any; an entry a worker cannot read stops it from starting.
func TestAllowListPorts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("weights")) }))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	ctx := context.Background()
	for _, c := range []struct {
		allow []string
		ok    bool
	}{
		{[]string{"127.0.0.1"}, true},
		{[]string{"127.0.0.1:" + port}, true},
		{[]string{"127.0.0.1:0" + port}, true}, // a leading zero is the same port
		{[]string{"127.0.0.1:1"}, false},
		{[]string{"localhost:" + port}, false}, // the URL's host is 127.0.0.1
		{[]string{"example.com:1", "127.0.0.1:" + port}, true},
	} {
		f := pretrained.Fetcher{CacheDir: t.TempDir(), AllowHosts: c.allow}
		_, err := f.Fetch(ctx, srv.URL+"/w.pth")
		if c.ok && err != nil || !c.ok && !errors.Is(err, pretrained.ErrRefused) {
			t.Errorf("allow %v: %v, want allowed %v", c.allow, err, c.ok)
		}
	}
	if err := pretrained.CheckAllowHosts([]string{"example.com", ".example.com:8443", "[::1]:8080", "::1", "10.0.0.1:80"}); err != nil {
		t.Errorf("valid entries: %v", err)
	}
	for _, bad := range []string{"example.com:0", "example.com:99999", "example.com:https", ":80", "example.com:"} {
		if err := pretrained.CheckAllowHosts([]string{bad}); err == nil {
			t.Errorf("%q: accepted, want refused", bad)
		}
	}
}
