package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/resomap/resomap/internal/atomicfile"
	"github.com/resomap/resomap/internal/iowatch"
)

// File is a Store in a local directory. Each Put writes a temporary file,
// fsyncs it and renames it into place, so a crash never leaves a
// half-written object under a real name.
type File struct {
	root string
}

// NewFile opens (creating) a directory store.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store file://%s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("store file://%s: %w", abs, err)
	}
	return &File{root: abs}, nil
}

func (f *File) URL() string { return "file://" + f.root }

func (f *File) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

func (f *File) write(key string, r io.Reader, createOnly bool) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	place := atomicfile.Write
	if createOnly {
		place = atomicfile.Create
	}
	if err := place(p, r); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("put %s: %w", key, ErrExists)
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// A file system can hang (NFS behind it) where no deadline reaches: the
// file store tells ctx's I/O watcher when it waits and when it advances,
// so a watched attempt notices a hang.

func (f *File) Put(ctx context.Context, key string, r io.Reader) error {
	defer iowatch.Begin(ctx)()
	return f.write(key, iowatch.Reader(ctx, r), false)
}

func (f *File) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	defer iowatch.Begin(ctx)()
	return f.write(key, strings.NewReader(string(data)), true)
}

func (f *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	end := iowatch.Begin(ctx)
	fh, err := os.Open(p)
	end()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s from %s: %w", key, f.URL(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return iowatch.ReadCloser(ctx, fh), nil
}

func (f *File) Stat(ctx context.Context, key string) (Info, error) {
	p, err := f.path(key)
	if err != nil {
		return Info{}, err
	}
	end := iowatch.Begin(ctx)
	st, err := os.Stat(p)
	end()
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("stat %s in %s: %w", key, f.URL(), ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func (f *File) List(ctx context.Context, prefix string) ([]Info, error) {
	defer iowatch.Begin(ctx)()
	var out []Info
	// Walk only the folder the prefix names (its part up to the last
	// slash): a store of a large sweep holds tens of thousands of files,
	// and a training lists small folders of its own several times.
	start := f.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 && checkKey(prefix[:i]) == nil {
		start = filepath.Join(f.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, _ := filepath.Rel(f.root, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		out = append(out, Info{Key: key, Size: st.Size(), ModTime: st.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", prefix, f.URL(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (f *File) Delete(ctx context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	end := iowatch.Begin(ctx)
	defer end()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Copy hard-links to to from's file (a file is never changed in place, so
// the two names can share it), replacing to atomically; across file
// systems it copies.
func (f *File) Copy(ctx context.Context, from, to string) error {
	src, err := f.path(from)
	if err != nil {
		return err
	}
	dst, err := f.path(to)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy %s: %w", from, ErrNotFound)
		}
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.link-%d", dst, time.Now().UnixNano())
	if err := os.Link(src, tmp); err != nil {
		in, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", from, err)
		}
		defer in.Close()
		return f.write(to, in, false)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return syncDir(filepath.Dir(dst))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
