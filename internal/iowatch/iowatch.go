// Package iowatch lets code that waits on I/O (a store call, a transfer)
// tell whoever watches the work it does for (a training attempt's
// heartbeater) that it waits and that it advances, without knowing who
// watches: the watcher travels in the context. Without one, every call
// here does nothing.
package iowatch

import (
	"context"
	"io"
)

// Watcher hears of I/O waits and of their progress.
type Watcher interface {
	// Begin says an I/O operation started; end says it finished.
	Begin() (end func())
	// Advance says an operation moved bytes.
	Advance()
}

type key struct{}

// With is ctx carrying w.
func With(ctx context.Context, w Watcher) context.Context { return context.WithValue(ctx, key{}, w) }

func from(ctx context.Context) Watcher {
	w, _ := ctx.Value(key{}).(Watcher)
	return w
}

// Begin tells ctx's watcher an I/O operation started; call end when it has.
func Begin(ctx context.Context) (end func()) {
	if w := from(ctx); w != nil {
		return w.Begin()
	}
	return func() {}
}

// Advance tells ctx's watcher that an operation moved bytes.
func Advance(ctx context.Context) {
	if w := from(ctx); w != nil {
		w.Advance()
	}
}

// Reader is r, telling ctx's watcher of every read that moved bytes.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	w := from(ctx)
	if w == nil {
		return r
	}
	return &reader{r: r, w: w}
}

// ReadCloser is rc inside an I/O wait (begun now, ended by Close), telling
// ctx's watcher of every read that moved bytes.
func ReadCloser(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	w := from(ctx)
	if w == nil {
		return rc
	}
	return &readCloser{reader: reader{r: rc, w: w}, c: rc, end: w.Begin()}
}

type reader struct {
	r io.Reader
	w Watcher
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.w.Advance()
	}
	return n, err
}

type readCloser struct {
	reader
	c   io.Closer
	end func()
}

func (r *readCloser) Close() error {
	if r.end != nil {
		r.end()
		r.end = nil
	}
	return r.c.Close()
}
