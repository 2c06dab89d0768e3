package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/s3test"
)

// A server that accepts connections and stops answering (frozen with
// SIGSTOP) fails every kind of call within its bound, as unreachable (it
// may pass), instead of stalling the caller; once it wakes, calls work.
// A slow but moving transfer is not cut: only a transfer that moves no
// byte for the idle time is.
func TestFrozenS3FailsCallsWithinTheirBounds(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "frozen")
	st, err := Open(ctx, "s3://frozen/p")
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*S3)
	s.idleTimeout, s.callTimeout = time.Second, time.Second
	for _, k := range []string{"a", "kept"} {
		if err := s.Put(ctx, k, bytes.NewReader(make([]byte, 1<<20))); err != nil {
			t.Fatal(err)
		}
	}
	srv.Freeze(t)
	for name, op := range map[string]func() error{
		"stat":   func() error { _, err := s.Stat(ctx, "a"); return err },
		"list":   func() error { _, err := s.List(ctx, ""); return err },
		"get":    func() error { _, err := s.Get(ctx, "a"); return err },
		"put":    func() error { return s.Put(ctx, "b", bytes.NewReader(make([]byte, 1<<20))) },
		"create": func() error { return s.PutIfAbsent(ctx, "c", []byte("x")) },
		"delete": func() error { return s.Delete(ctx, "a") },
	} {
		t0 := time.Now()
		err := op()
		if took := time.Since(t0); !errors.Is(err, ErrUnreachable) || took > 5*time.Second {
			t.Errorf("%s on a frozen server: %v after %v, want unreachable within seconds", name, err, took)
		}
	}
	srv.Thaw(t)
	rc, err := s.Get(ctx, "kept") // (requests sent while frozen are served now)
	if err != nil {
		t.Fatal(err)
	}
	// A slow reader that still moves bytes is never cut, however long.
	var got int64
	for {
		n, err := io.CopyN(io.Discard, rc, 256<<10)
		got += n
		if err != nil {
			break
		}
		time.Sleep(300 * time.Millisecond) // slower than nothing, faster than the idle bound
	}
	rc.Close()
	if got != 1<<20 {
		t.Fatalf("slow read got %d bytes, want all %d", got, 1<<20)
	}
}
