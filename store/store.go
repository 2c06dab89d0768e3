// Package store keeps checkpoints and results in a blob store addressed by
// URL: file:///path (a local directory, the default) or s3://bucket/prefix.
// Writes are atomic: a reader sees a whole object under its name or none.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

var (
	// ErrNotFound: no object under that key.
	ErrNotFound = errors.New("not found")
	// ErrExists: PutIfAbsent found the key taken.
	ErrExists = errors.New("already exists")
	// ErrUnreachable: the store's server did not answer; it may later.
	ErrUnreachable = errors.New("unreachable")
)

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Writer is who stored it (Option WriterID), where the store keeps it
	// (S3's object metadata, read by Stat); "" otherwise.
	Writer string
}

// Store is a flat key space of immutable-once-written blobs. Keys use '/'.
type Store interface {
	// Put stores r under key atomically (replacing any previous object).
	Put(ctx context.Context, key string, r io.Reader) error
	// PutIfAbsent stores data only if key does not exist yet (ErrExists).
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Info, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	Delete(ctx context.Context, key string) error
	// URL is the store's address, without secrets.
	URL() string
}

// Option changes how Open opens an S3 store (a file store ignores them).
type Option func(*S3)

// WriterID records id with every object this process stores, as S3 object
// metadata: an audit of who wrote what (a worker's identity).
func WriterID(id string) Option { return func(s *S3) { s.writer = id } }

// CreateBucket creates a missing bucket instead of failing: for a worker
// given a fresh S3 server (a new `docker compose up`).
func CreateBucket() Option { return func(s *S3) { s.createBucket = true } }

// Open opens a store by URL. A plain path means file://.
func Open(ctx context.Context, rawURL string, opts ...Option) (Store, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("store: empty URL (use file:///path or s3://bucket/prefix)")
	}
	if !strings.Contains(rawURL, "://") {
		return NewFile(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		// file:///abs/path, or file://rel/path relative to the working directory.
		return NewFile(strings.TrimPrefix(rawURL, "file://"))
	case "s3":
		s, err := NewS3(ctx, u, opts...)
		if err != nil {
			return nil, err
		}
		if err := CheckCreateOnly(ctx, s); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("store %q: unknown scheme %q (use file:// or s3://)", rawURL, u.Scheme)
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s.URL(), err)
	}
	return b, nil
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("store: invalid key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("store: invalid key %q", key)
		}
	}
	return nil
}

// Copier is a Store that copies objects without moving their bytes
// through this process (a hard link, a server-side copy).
type Copier interface {
	Copy(ctx context.Context, from, to string) error
}

// Copy stores a copy of object from under to (replacing it), through the
// store's own copy when it has one, else by streaming.
func Copy(ctx context.Context, st interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Put(ctx context.Context, key string, r io.Reader) error
}, from, to string) error {
	if c, ok := st.(Copier); ok {
		return c.Copy(ctx, from, to)
	}
	rc, err := st.Get(ctx, from)
	if err != nil {
		return err
	}
	defer rc.Close()
	return st.Put(ctx, to, rc)
}

// createProbe creates the probe's key, tried three times: workers that
// start together race on the probes' folder (versitygw's posix backend
// removes a folder emptied by one worker's cleanup while another creates
// in it, and answers ExistingObjectIsDirectory). On a retry, the key
// already there is this probe's own first write (its name is random).
func createProbe(ctx context.Context, s Store, key string) error {
	var err error
	for attempt := range 3 {
		err = s.PutIfAbsent(ctx, key, []byte("first"))
		switch {
		case err == nil, attempt > 0 && errors.Is(err, ErrExists):
			return nil
		case errors.Is(err, ErrExists) || ctx.Err() != nil:
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return err
}

// ErrNoCreateOnly: the store overwrites where a create-only write
// (PutIfAbsent, S3's If-None-Match: *) must be refused.
var ErrNoCreateOnly = errors.New("does not honour create-only writes (If-None-Match: *)")

// CheckCreateOnly makes sure s refuses a second create of one key. Every
// fence of ResoMap rests on it (a checkpoint committed once, one claim on a
// config, a result recorded once): a server that ignores the condition
// would grant every claim and overwrite committed records without a word.
func CheckCreateOnly(ctx context.Context, s Store) error {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	key := "probes/create-only-" + hex.EncodeToString(nonce[:])
	if err := createProbe(ctx, s, key); err != nil {
		return fmt.Errorf("store %s: create-only probe: %w", s.URL(), err)
	}
	defer func() { _ = s.Delete(context.WithoutCancel(ctx), key) }()
	err := s.PutIfAbsent(ctx, key, []byte("second"))
	switch {
	case errors.Is(err, ErrExists):
		return nil
	case err != nil:
		return fmt.Errorf("store %s: create-only probe: %w", s.URL(), err)
	}
	return fmt.Errorf("store %s %w: a second create of %s succeeded. ResoMap fences attempts with it; use a server that honours it (AWS S3, versitygw, MinIO)", s.URL(), ErrNoCreateOnly, key)
}
