package tracking

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A worker's MLflow credentials go only to the server its own environment
// names: a spec naming another server (a listener that records headers)
// is refused before any request, so the listener never sees the token;
// the worker's own server gets it.
func TestCredentialsStayWithTheirServer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	listener := func() *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Host+" "+r.Header.Get("Authorization"))
			mu.Unlock()
			w.Write([]byte(`{"experiment": {"experiment_id": "1", "name": "x", "lifecycle_stage": "active"}}`))
		}))
	}
	own, other := listener(), listener()
	defer own.Close()
	defer other.Close()
	env := map[string]string{EnvToken: "s3cret", EnvURI: own.URL}
	getenv := func(k string) string { return env[k] }

	if _, err := fromEnv(other.URL, getenv); !errors.Is(err, ErrOtherServer) || Retryable(err) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("another server: %v; want ErrOtherServer, not retryable, without the token", err)
	}
	c, err := fromEnv(own.URL+"/", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Experiment(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, other.Listener.Addr().String()) {
			t.Errorf("the other server was called: %q", s)
		}
	}
	if len(seen) == 0 || !strings.HasSuffix(seen[0], "Bearer s3cret") {
		t.Errorf("the worker's own server did not get its token: %q", seen)
	}
}

func TestSameServer(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"https://dagshub.com/me/repo.mlflow", "https://dagshub.com/me/repo.mlflow/", true},
		{"https://DagsHub.com:443/me/repo.mlflow", "https://dagshub.com/me/repo.mlflow", true},
		{"https://dagshub.com/them/repo.mlflow", "https://dagshub.com/me/repo.mlflow", false}, // one host, many servers
		{"http://mlflow.lab:5000", "https://mlflow.lab:5000", false},                          // not over plain http unless the worker says so
		{"http://mlflow.lab:5000", "http://mlflow.lab:5000", true},
		{"http://mlflow.lab:5001", "http://mlflow.lab:5000", false},
		{"http://169.254.169.254", "http://mlflow.lab", false},
		{"https://user:pw@mlflow.lab", "https://mlflow.lab", false},
		{"not a uri", "https://mlflow.lab", false},
	} {
		if got := sameServer(c.a, c.b); got != c.same {
			t.Errorf("sameServer(%q, %q) = %v", c.a, c.b, got)
		}
	}
	noOwn := Credentials{Token: "t"}.ForServer("https://mlflow.lab", "")
	if !errors.Is(noOwn, ErrOtherServer) || !strings.Contains(noOwn.Error(), EnvURI) {
		t.Errorf("a token with no server of its own: %v", noOwn)
	}
	if err := (Credentials{}).ForServer("http://anywhere", ""); err != nil {
		t.Errorf("no credentials may go anywhere: %v", err)
	}
	if err := (Credentials{Username: "u", Password: "p"}).ForServer("https://other", "https://mlflow.lab"); !errors.Is(err, ErrOtherServer) {
		t.Errorf("a password to another server: %v", err)
	}
}

// A redirect to another port of the same host (where net/http would send
// the token along) is followed without it.
func TestCredentialsDoNotFollowRedirects(t *testing.T) {
	var heard []string
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heard = append(heard, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write([]byte(`{"experiment": {"experiment_id": "1", "name": "x", "lifecycle_stage": "active"}}`))
	}))
	defer elsewhere.Close()
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer own.Close()
	env := map[string]string{EnvToken: "s3cret", EnvURI: own.URL}
	c, err := fromEnv(own.URL, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.Experiment(context.Background(), "x")
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard[0] != "" {
		t.Errorf("the server redirected to heard %q, want one request without the token", heard)
	}
}
