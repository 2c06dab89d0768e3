package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/store"
)

// overwritingS3 is an S3-compatible server that accepts If-None-Match: *
// and overwrites anyway: just enough of S3 for a store to open on it.
type overwritingS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (o *overwritingS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case r.Method == http.MethodHead && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0: // HeadBucket
	case r.Method == http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		o.objects[r.URL.Path] = b // If-None-Match ignored
		w.Header().Set("ETag", `"0"`)
	case r.Method == http.MethodDelete:
		delete(o.objects, r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not implemented", http.StatusNotImplemented)
	}
}

// A store on a server that ignores conditional writes is refused, naming
// the problem; the real stores pass the same probe.
func TestStoresThatIgnoreCreateOnlyAreRefused(t *testing.T) {
	srv := httptest.NewServer(&overwritingS3{objects: map[string][]byte{}})
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("RESOMAP_S3_PATH_STYLE", "true")
	_, err := store.Open(context.Background(), "s3://fenceless/p")
	if !errors.Is(err, store.ErrNoCreateOnly) || !strings.Contains(err.Error(), "s3://fenceless/p") {
		t.Fatalf("opening a store that overwrites: %v, want a refusal naming it", err)
	}
	for name, s := range backends(t) {
		if err := store.CheckCreateOnly(context.Background(), s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
