package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
)

// backends returns a fresh store of each kind: the same contract holds for
// the local directory and a real S3 server.
func backends(t *testing.T) map[string]store.Store {
	t.Helper()
	f, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "contract")
	s, err := store.Open(context.Background(), "s3://contract/some/prefix")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]store.Store{"file": f, "s3": s}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Get(ctx, "a/missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("get missing: %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(ctx, "a/missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("stat missing: %v, want ErrNotFound", err)
			}
			for _, k := range []string{"runs/x/b.json", "runs/x/a.json", "runs/y/c.bin", "other/d"} {
				if err := s.Put(ctx, k, strings.NewReader("data of "+k)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Put(ctx, "runs/x/a.json", strings.NewReader("replaced")); err != nil {
				t.Fatal(err)
			}
			b, err := store.ReadAll(ctx, s, "runs/x/a.json")
			if err != nil || string(b) != "replaced" {
				t.Fatalf("get after replace: %q, %v", b, err)
			}
			st, err := s.Stat(ctx, "runs/y/c.bin")
			if err != nil || st.Size != int64(len("data of runs/y/c.bin")) {
				t.Fatalf("stat: %+v, %v", st, err)
			}
			list, err := s.List(ctx, "runs/x/")
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[0].Key != "runs/x/a.json" || list[1].Key != "runs/x/b.json" {
				t.Fatalf("list runs/x/: %+v", list)
			}
			if all, _ := s.List(ctx, ""); len(all) != 4 {
				t.Fatalf("list all: %d objects, want 4", len(all))
			}
			// A prefix is a prefix of keys, not a folder: it may end inside
			// a name, span folders, or name a folder that is not there.
			for prefix, want := range map[string]int{"runs/x/a": 1, "runs/": 3, "runs/y": 1, "ru": 3, "nope/x/": 0, "runs/x/a.json/": 0} {
				got, err := s.List(ctx, prefix)
				if err != nil || len(got) != want {
					t.Fatalf("list %q: %d objects (%v), want %d", prefix, len(got), err, want)
				}
			}
			if err := s.PutIfAbsent(ctx, "results/h.json", []byte("first")); err != nil {
				t.Fatal(err)
			}
			if err := s.PutIfAbsent(ctx, "results/h.json", []byte("second")); !errors.Is(err, store.ErrExists) {
				t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
			}
			if b, _ := store.ReadAll(ctx, s, "results/h.json"); string(b) != "first" {
				t.Fatalf("PutIfAbsent overwrote: %q", b)
			}
			if err := s.Delete(ctx, "runs/x/a.json"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "runs/x/a.json"); err != nil {
				t.Fatalf("deleting twice: %v", err)
			}
			if _, err := s.Get(ctx, "runs/x/a.json"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("get deleted: %v", err)
			}
			for _, bad := range []string{"", "/abs", "a/../b", "a//b"} {
				if err := s.Put(ctx, bad, strings.NewReader("x")); err == nil {
					t.Errorf("key %q accepted", bad)
				}
			}
		})
	}
}

// Two writers racing to record the same result: exactly one wins.
func TestPutIfAbsentRaceHasOneWinner(t *testing.T) {
	ctx := context.Background()
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for round := 0; round < 5; round++ {
				key := fmt.Sprintf("results/race-%d.json", round)
				var wg sync.WaitGroup
				errs := make([]error, 8)
				for i := range errs {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						errs[i] = s.PutIfAbsent(ctx, key, []byte(fmt.Sprint("writer ", i)))
					}(i)
				}
				wg.Wait()
				wins := 0
				for _, err := range errs {
					switch {
					case err == nil:
						wins++
					case !errors.Is(err, store.ErrExists):
						t.Fatalf("loser got %v, want ErrExists", err)
					}
				}
				if wins != 1 {
					t.Fatalf("%d writers won, want exactly 1", wins)
				}
			}
		})
	}
}

// Large objects round-trip (multipart on S3) with matching bytes.
func TestLargeObjectRoundTrip(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 110<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			// A non-seekable reader, as a stream from libtorch would be.
			if err := s.Put(ctx, "big/ckpt.safetensors", io.MultiReader(bytes.NewReader(data))); err != nil {
				t.Fatal(err)
			}
			got, err := store.ReadAll(ctx, s, "big/ckpt.safetensors")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("round trip changed the data (%d bytes back)", len(got))
			}
		})
	}
}

// Wrong credentials, a missing bucket and an unreachable endpoint each give
// one clear error naming the URL and no secret.
func TestS3ConfigurationErrors(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "exists")
	check := func(name, rawURL, want string) {
		t.Run(name, func(t *testing.T) {
			_, err := store.Open(ctx, rawURL)
			if err == nil {
				t.Fatal("opened")
			}
			msg := err.Error()
			u, _ := url.Parse(rawURL)
			if !strings.Contains(msg, "s3://"+u.Host) || !strings.Contains(msg, want) {
				t.Fatalf("error %q, want one naming the URL and saying %q", msg, want)
			}
			if strings.Contains(msg, s3test.SecretKey) || strings.Contains(msg, "wrong-secret") {
				t.Fatalf("error leaks a secret: %q", msg)
			}
		})
	}
	check("missing bucket", "s3://no-such-bucket/p", "bucket does not exist")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	check("wrong credentials", "s3://exists/p", "access denied")
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
	check("unreachable endpoint", "s3://exists/p", "unreachable")
}

// Copy duplicates an object inside the store without this process moving
// its bytes where the store can (a hard link, a server-side copy), and
// replaces what was there.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.Put(ctx, "d/a", strings.NewReader("first")); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "e/b", strings.NewReader("old")); err != nil {
				t.Fatal(err)
			}
			if err := store.Copy(ctx, s, "d/a", "e/b"); err != nil {
				t.Fatal(err)
			}
			rc, err := s.Get(ctx, "e/b")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != "first" {
				t.Fatalf("copy holds %q", b)
			}
			if err := store.Copy(ctx, s, "d/missing", "e/c"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("copy of a missing object: %v", err)
			}
			if f, ok := s.(*store.File); ok {
				a, _ := os.Stat(filepath.Join(strings.TrimPrefix(f.URL(), "file://"), "d", "a"))
				c, _ := os.Stat(filepath.Join(strings.TrimPrefix(f.URL(), "file://"), "e", "b"))
				if !os.SameFile(a, c) {
					t.Fatal("the file store copied bytes instead of linking")
				}
			}
		})
	}
}

// A worker given a fresh S3 server creates its bucket (racing workers all
// start), and every object it stores names it, through Put, PutIfAbsent
// and Copy alike; a store opened without a writer names none.
func TestS3CreatesItsBucketAndNamesItsWriter(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	if _, err := store.Open(ctx, "s3://fresh/p"); err == nil || !strings.Contains(err.Error(), "bucket does not exist") {
		t.Fatalf("without CreateBucket: %v, want bucket does not exist", err)
	}
	stores := make([]store.Store, 3)
	errs := make(chan error, len(stores))
	for i := range stores {
		go func() {
			var err error
			stores[i], err = store.Open(ctx, "s3://fresh/p", store.CreateBucket(), store.WriterID(fmt.Sprintf("host%d/1", i)))
			errs <- err
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatalf("racing creators: %v", err)
		}
	}
	w := stores[1]
	if err := w.Put(ctx, "a", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.PutIfAbsent(ctx, "b", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := store.Copy(ctx, stores[2], "a", "c"); err != nil {
		t.Fatal(err)
	}
	plain, err := store.Open(ctx, "s3://fresh/p")
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Put(ctx, "d", strings.NewReader("z")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"a": "host1/1", "b": "host1/1", "c": "host2/1", "d": ""} {
		in, err := plain.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if in.Writer != want {
			t.Errorf("%s: writer %q, want %q", key, in.Writer, want)
		}
	}
}
