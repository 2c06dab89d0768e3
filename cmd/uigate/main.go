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
	"net"
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

// failureDelay slows each refused request. maxFailures wrong passwords
// from one address in failureWindow stop the gate from checking that
// address's passwords until the window has passed (429), and
// maxAllFailures from all addresses stop it for everyone: guessing in
// parallel is as slow as in turn, and one guesser does not lock the user
// out alone.
const (
	failureDelay   = 300 * time.Millisecond
	maxFailures    = 20
	maxAllFailures = 200
	failureWindow  = time.Minute
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
	failures []failure // refused (and pending) logins in the last failureWindow, oldest first
	now      func() time.Time
}

// failure is a refused login, or one being checked (reserved before the
// check, so that parallel guesses count at once).
type failure struct {
	at     time.Time
	client string
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
	user, password, hasAuth := r.BasicAuth()
	if !hasAuth {
		g.refuse(w)
		return
	}
	release, allowed := g.reserve(clientOf(r))
	if !allowed {
		http.Error(w, "429 Too Many Requests: too many wrong passwords of late; try again in a minute", http.StatusTooManyRequests)
		return
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(u[:], g.user[:])&subtle.ConstantTimeCompare(p[:], g.password[:]) != 1 {
		// The reservation stays: a refused login. Not the user name in
		// the log: a password typed there would be kept.
		g.logger.Warn("refused a login", "remote", r.RemoteAddr, "path", r.URL.Path)
		time.Sleep(g.delay)
		g.refuse(w)
		return
	}
	release()
	g.proxy.ServeHTTP(w, r)
}

// refuse asks for the user and password.
func (g *gate) refuse(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="ResoMap", charset="UTF-8"`)
	http.Error(w, "401 Unauthorized: the Web UI needs its user and password (UI_PASSWORD in .env)", http.StatusUnauthorized)
}

// clientOf is the address a request came from (its host: one machine's
// connections are one client).
func clientOf(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// reserve counts a login about to be checked as refused, unless client's
// or everyone's refusals in the last failureWindow reached their limit
// (false); release takes it back when the password was right. Check and
// count are one step, so parallel guesses cannot all slip under a limit.
func (g *gate) reserve(client string) (release func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	cut := now.Add(-failureWindow)
	for len(g.failures) > 0 && g.failures[0].at.Before(cut) {
		g.failures = g.failures[1:]
	}
	mine := 0
	for _, f := range g.failures {
		if f.client == client {
			mine++
		}
	}
	if mine >= maxFailures || len(g.failures) >= maxAllFailures {
		return nil, false
	}
	f := &failure{at: now, client: client}
	g.failures = append(g.failures, *f)
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for i := range g.failures {
			if g.failures[i] == *f {
				g.failures = append(g.failures[:i], g.failures[i+1:]...)
				return
			}
		}
	}, true
}
