package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Only the right user and password reach the UI, and the UI never sees
// the password; a gate with a short password does not start.
func TestGateLetsOnlyItsUserThrough(t *testing.T) {
	var seen []string
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path+" auth="+r.Header.Get("Authorization"))
		io.WriteString(w, "<html>the UI")
	}))
	defer ui.Close()
	g, err := newGate(ui.URL, "resomap", "correct horse battery", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g.delay = 0
	front := httptest.NewServer(g)
	defer front.Close()
	get := func(user, password string, basic bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/namespaces/default", nil)
		if basic {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("a 401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		user, password string
		basic          bool
	}{
		{"", "", false},
		{"resomap", "wrong", true},
		{"resomap", "correct horse batter", true},   // a prefix
		{"resomap", "correct horse battery!", true}, // longer
		{"admin", "correct horse battery", true},
		{"", "", true},
	} {
		if code, _ := get(c.user, c.password, c.basic); code != http.StatusUnauthorized {
			t.Errorf("user %q password %q: %d, want 401", c.user, c.password, code)
		}
	}
	if len(seen) != 0 {
		t.Fatalf("refused requests reached the UI: %v", seen)
	}
	if code, body := get("resomap", "correct horse battery", true); code != http.StatusOK || body != "<html>the UI" {
		t.Fatalf("the right password: %d %q, want the UI's page", code, body)
	}
	if len(seen) != 1 || seen[0] != "/namespaces/default auth=" {
		t.Errorf("the UI saw %v, want one request without the Authorization header", seen)
	}
	for _, pw := range []string{"", "short"} {
		if _, err := newGate(ui.URL, "resomap", pw, nil); err == nil || !strings.Contains(err.Error(), "UI_PASSWORD") {
			t.Errorf("password %q: %v, want refused naming UI_PASSWORD", pw, err)
		}
	}
	if _, err := newGate("127.0.0.1:8081", "resomap", "correct horse battery", nil); err == nil {
		t.Error("an upstream without a scheme was accepted")
	}
}

// maxFailures wrong passwords from one address in a minute stop the gate
// from checking that address's passwords (429) until the minute has
// passed, while another address still gets in; maxAllFailures from all
// addresses stop it for everyone. Guesses in parallel count at once.
func TestGateLimitsGuessing(t *testing.T) {
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui") }))
	defer ui.Close()
	g, err := newGate(ui.URL, "resomap", "correct horse battery", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	g.delay, g.now = 0, func() time.Time { return clock }
	code := func(from, pw string) int {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = from + ":40000"
		req.SetBasicAuth("resomap", pw)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec.Code
	}
	// In parallel: exactly maxFailures of many guesses are checked.
	codes := make(chan int, 3*maxFailures)
	var wg sync.WaitGroup
	for range 3 * maxFailures {
		wg.Go(func() { codes <- code("10.0.0.1", "guess") })
	}
	wg.Wait()
	close(codes)
	counts := map[int]int{}
	for c := range codes {
		counts[c]++
	}
	if counts[http.StatusUnauthorized] != maxFailures || counts[http.StatusTooManyRequests] != 2*maxFailures {
		t.Fatalf("parallel guesses: %v, want %d checked (401) and the rest 429", counts, maxFailures)
	}
	if c := code("10.0.0.1", "correct horse battery"); c != http.StatusTooManyRequests {
		t.Errorf("the right password from the guessing address: %d, want 429 (no password is checked)", c)
	}
	if c := code("10.0.0.2", "correct horse battery"); c != http.StatusOK {
		t.Errorf("the right password from another address: %d, want 200", c)
	}
	for i := range maxAllFailures / maxFailures {
		for range maxFailures {
			code(fmt.Sprintf("10.1.0.%d", i), "guess")
		}
	}
	if c := code("10.0.0.3", "correct horse battery"); c != http.StatusTooManyRequests {
		t.Errorf("after %d refusals from everywhere: %d, want 429 for everyone", maxAllFailures, c)
	}
	clock = clock.Add(failureWindow + time.Second)
	if c := code("10.0.0.1", "correct horse battery"); c != http.StatusOK {
		t.Errorf("a minute later: %d, want 200", c)
	}
}
