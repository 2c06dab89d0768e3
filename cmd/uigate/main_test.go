package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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

// Wrong passwords from anywhere, maxFailures in a minute, stop the gate
// from checking any password (429) until the minute has passed.
func TestGateLimitsGuessing(t *testing.T) {
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui") }))
	defer ui.Close()
	g, err := newGate(ui.URL, "resomap", "correct horse battery", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	g.delay, g.now = 0, func() time.Time { return clock }
	code := func(pw string) int {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth("resomap", pw)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range maxFailures {
		if c := code("guess"); c != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, c)
		}
	}
	if c := code("correct horse battery"); c != http.StatusTooManyRequests {
		t.Errorf("the right password during the attack: %d, want 429 (no password is checked)", c)
	}
	clock = clock.Add(failureWindow + time.Second)
	if c := code("correct horse battery"); c != http.StatusOK {
		t.Errorf("a minute later: %d, want 200", c)
	}
}
