// Command uigate puts HTTP basic authentication in front of Temporal's Web
// UI, whose write actions (terminate, signal, start) have no login of
// their own: the secured stack (docker-compose.secure.yml) runs it in the
// UI container's network, on the UI's published port, and moves the UI
// behind it. It forwards only requests with the right user and password,
// without their Authorization header.
//
//	UI_PASSWORD=... uigate [--listen :8080] [--upstream http://127.0.0.1:8081] [--user resomap]
package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// minPassword is the shortest password the gate accepts: it guards every
// write action of the Web UI, over a port that may leave the machine.
const minPassword = 12

// failureDelay slows each refused request; maxFailures in failureWindow,
// from anywhere, stop the gate from checking passwords until the window
// has passed (429): guessing in parallel is as slow as in turn. A user
// with the password waits out an attack too.
const (
	failureDelay  = 300 * time.Millisecond
	maxFailures   = 20
	failureWindow = time.Minute
)

func main() {
	listen := flag.String("listen", envOr("UI_GATE_LISTEN", ":8080"), "address to serve on")
	upstream := flag.String("upstream", envOr("UI_GATE_UPSTREAM", "http://127.0.0.1:8081"), "the Web UI behind the gate")
	user := flag.String("user", envOr("UI_USER", "resomap"), "the user name")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	h, err := newGate(*upstream, *user, os.Getenv("UI_PASSWORD"), logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "uigate:", err)
		os.Exit(2)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 30 * time.Second}
	logger.Info("gate serving", "listen", *listen, "upstream", *upstream, "user", *user)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "uigate:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// gate forwards authenticated requests to the UI.
type gate struct {
	proxy          *httputil.ReverseProxy
	user, password [sha256.Size]byte // digests: the comparison takes one time whatever the lengths
	delay          time.Duration
	logger         *slog.Logger

	mu       sync.Mutex
	failures []time.Time // refused logins in the last failureWindow
	now      func() time.Time
}

func newGate(upstream, user, password string, logger *slog.Logger) (*gate, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("--upstream %q is not an http(s) URL", upstream)
	}
	switch {
	case user == "":
		return nil, errors.New("the user name is empty")
	case len(password) < minPassword:
		return nil, fmt.Errorf("UI_PASSWORD is %d characters; set one of at least %d (openssl rand -hex 16)", len(password), minPassword)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	forward := proxy.Director
	proxy.Director = func(r *http.Request) {
		forward(r)
		r.Header.Del("Authorization") // the UI has no use for the gate's password
	}
	return &gate{proxy: proxy, user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password)),
		delay: failureDelay, logger: logger, now: time.Now}, nil
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, password, ok := r.BasicAuth()
	if ok && g.overLimit() {
		http.Error(w, "429 Too Many Requests: too many wrong passwords of late; try again in a minute", http.StatusTooManyRequests)
		return
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	if !ok || subtle.ConstantTimeCompare(u[:], g.user[:])&subtle.ConstantTimeCompare(p[:], g.password[:]) != 1 {
		if ok {
			g.fail()
			// Not the user name: a password typed there would be logged.
			g.logger.Warn("refused a login", "remote", r.RemoteAddr, "path", r.URL.Path)
			time.Sleep(g.delay)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="ResoMap", charset="UTF-8"`)
		http.Error(w, "401 Unauthorized: the Web UI needs its user and password (UI_PASSWORD in .env)", http.StatusUnauthorized)
		return
	}
	g.proxy.ServeHTTP(w, r)
}

// overLimit says whether maxFailures logins were refused in the last
// failureWindow.
func (g *gate) overLimit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	cut := g.now().Add(-failureWindow)
	for len(g.failures) > 0 && g.failures[0].Before(cut) {
		g.failures = g.failures[1:]
	}
	return len(g.failures) >= maxFailures
}

func (g *gate) fail() {
	g.mu.Lock()
	g.failures = append(g.failures, g.now())
	g.mu.Unlock()
}
