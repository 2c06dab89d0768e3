package store

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/s3test"
)

// throttle forwards TCP connections from a local port to addr, each
// direction paced at bytesPerSec (a slow link in front of the store).
func throttle(t *testing.T, addr string, bytesPerSec int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pace := func(dst, src net.Conn) {
		defer dst.Close()
		const chunk = 16 << 10
		buf := make([]byte, chunk)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				// Rate shaping, not synchronisation: the link's speed.
				time.Sleep(time.Duration(n) * time.Second / time.Duration(bytesPerSec))
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go pace(up, c)
			go pace(c, up)
		}
	}()
	return l.Addr().String()
}

// Over a link far slower than the store's idle bound allows for a part
// (12 MB at 2 MB/s, 4 s without a byte counted as stalled), an upload and
// a download still complete: progress is counted as bytes cross the
// network, not when the transfer manager reads its source a part ahead
// (it read the 12 MB at once, then nothing for 6 s: cut as idle). What
// the sockets buffer (about 2.3 MB here, a second at this rate) is the
// silence left at a part's end.
func TestSlowLinkTransfersAreNotCut(t *testing.T) {
	srv := s3test.Start(t, t.TempDir())
	srv.Env(t)
	srv.CreateBucket(t, "slow")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://"+throttle(t, srv.Addr, 2<<20))
	ctx := context.Background()
	st, err := Open(ctx, "s3://slow/p")
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*S3)
	s.idleTimeout = 4 * time.Second
	data := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	t0 := time.Now()
	if err := s.Put(ctx, "big", bytes.NewReader(data)); err != nil {
		t.Fatalf("upload over a slow link: %v (after %v)", err, time.Since(t0))
	}
	t.Logf("12 MB up in %v", time.Since(t0))
	t0 = time.Now()
	rc, err := s.Get(ctx, "big")
	if err != nil {
		t.Fatalf("download over a slow link: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download over a slow link: %d bytes, %v (after %v)", len(got), err, time.Since(t0))
	}
	t.Logf("12 MB down in %v", time.Since(t0))
}
