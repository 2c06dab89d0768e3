package store

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/resomap/resomap/internal/iowatch"
)

// How long a store operation may wait. A server that accepts connections
// but stops answering (frozen, overloaded, a hung file system behind it)
// must fail the call, not stall its caller for ever; a slow but moving
// transfer of a large checkpoint must still finish. So a transfer is bound
// by progress (no byte moved for idleTimeout), and a call that moves no
// body by callTimeout.
const (
	defaultIdleTimeout = time.Minute
	defaultCallTimeout = 2 * time.Minute
)

// call bounds one small call (no body to speak of) by the deadline, and
// tells ctx's I/O watcher (a training attempt's heartbeater) it waits.
func call(ctx context.Context, limit time.Duration) (context.Context, func()) {
	end := iowatch.Begin(ctx)
	ctx, cancel := context.WithTimeout(ctx, limit)
	return ctx, func() { cancel(); end() }
}

// transfer bounds a transfer by its progress: its context is cancelled
// when no byte moved through the reader it wraps for idle.
type transfer struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	end    func()
}

func newTransfer(ctx context.Context, idle time.Duration) *transfer {
	t := &transfer{idle: idle, end: iowatch.Begin(ctx)}
	ctx, t.cancel = context.WithCancelCause(ctx)
	t.ctx = context.WithValue(ctx, transferKey{}, t) // for wireClient
	t.timer = time.AfterFunc(idle, func() {
		t.cancel(fmt.Errorf("%w: no byte moved for %v", ErrUnreachable, idle))
	})
	return t
}

type transferKey struct{}

// transferIn is the transfer ctx belongs to (nil: none).
func transferIn(ctx context.Context) *transfer {
	t, _ := ctx.Value(transferKey{}).(*transfer)
	return t
}

// onWire says bytes of the transfer crossed the network: progress, for
// its idle bound and its watcher alike.
func (t *transfer) onWire() {
	t.timer.Reset(t.idle)
	iowatch.Advance(t.ctx)
}

// reader is r, each read of which counts as progress.
func (t *transfer) reader(r io.Reader) io.Reader {
	return &progressReader{r: iowatch.Reader(t.ctx, r), t: t}
}

func (t *transfer) done() {
	t.timer.Stop()
	t.cancel(nil)
	t.end()
}

type progressReader struct {
	r io.Reader
	t *transfer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.timer.Reset(p.t.idle)
	}
	return n, err
}

// transferBody is an object being read: bound by its progress until
// closed.
type transferBody struct {
	io.Reader
	c io.Closer
	t *transfer
}

func (b *transferBody) Close() error {
	b.t.done()
	return b.c.Close()
}

// wireClient counts a transfer's progress where its bytes cross the
// network: as the HTTP transport takes a request's body to send it and
// as a response's body arrives. The transfer manager reads its source a
// whole part ahead (16 MB, eight parts at once): counted there alone, an
// upload over a slow link (a lab's 10-20 Mbit/s uplink) went minutes
// without a read while every byte was on its way, and was cut as idle.
type wireClient struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
}

func (c wireClient) Do(req *http.Request) (*http.Response, error) {
	t := transferIn(req.Context())
	if t == nil {
		return c.next.Do(req)
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &wireBody{ReadCloser: req.Body, t: t}
	}
	resp, err := c.next.Do(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &wireBody{ReadCloser: resp.Body, t: t}
	}
	return resp, err
}

// wireBody is a body whose every read that moved bytes is the transfer's
// progress.
type wireBody struct {
	io.ReadCloser
	t *transfer
}

func (b *wireBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.t.onWire()
	}
	return n, err
}
