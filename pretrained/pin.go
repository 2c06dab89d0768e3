package pretrained

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/resomap/resomap/internal/iowatch"
)

// Pin is a copy of fetched in the cache named by its content
// (by-sha256/<sha>): a file a reader opens later by path holds exactly the
// bytes that were hashed, whatever happens to the original since (edited,
// or downloaded again). A copy whose bytes are no longer those fails with
// ErrChecksum.
func (f Fetcher) Pin(ctx context.Context, fetched Fetched) (string, error) {
	dir, err := f.cacheDir()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "by-sha256", fetched.SHA256)
	src, err := os.Open(fetched.Path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	srcInfo, err := src.Stat()
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(dst); err == nil && st.Size() == srcInfo.Size() {
		return dst, nil // synced and renamed into place after its hash was checked
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".pin-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer iowatch.Begin(ctx)()
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(iowatch.Reader(ctx, ctxReader{ctx, src}), f.maxBytes()+1))
	if err == nil {
		err = tmp.Sync() // on disk before it is renamed into place
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != fetched.SHA256 {
		return "", fmt.Errorf("%w: %s changed while it was read (SHA-256 %.16s…, hashed as %.16s…)", ErrChecksum, fetched.Path, sum, fetched.SHA256)
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// cacheDir is where fetched files are kept.
func (f Fetcher) cacheDir() (string, error) {
	if f.CacheDir != "" {
		return f.CacheDir, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("weights cache: %w (give a path to the weights instead)", err)
	}
	return filepath.Join(c, "resomap", "weights"), nil
}
