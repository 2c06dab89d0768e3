package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// FileDigest is one file of a data set and the SHA-256 of its bytes.
type FileDigest struct {
	Path   string `json:"path"` // relative to the data set's folder
	SHA256 string `json:"sha256"`
}

// Identity names a data set by its content: Hash changes when and only when
// an image, a label (class folder) or the split changes, not when the files
// are copied or touched. Files lists the image folder's files with their
// digests, so two copies that differ can name the first file that does.
type Identity struct {
	Hash  string       `json:"hash"`
	Files []FileDigest `json:"files,omitempty"` // image folders only
}

// Describe computes the identity of a source; file digests are memoised in
// opts.Hashes by path, size and modification time, so unchanged files are
// read once per process.
func Describe(spec string, opts Options) (Identity, error) {
	dir, err := resolve(spec, opts.Roots)
	if err != nil {
		return Identity{}, err
	}
	_, id, err := identify(dir, opts.withDefaults())
	return id, err
}

// FirstDifference names the first file in which two identities of the same
// data set differ ("" when their file lists agree).
func FirstDifference(want, have Identity) string {
	got := map[string]string{}
	for _, f := range have.Files {
		got[f.Path] = f.SHA256
	}
	for _, f := range want.Files {
		switch sum, ok := got[f.Path]; {
		case !ok:
			return f.Path + " (missing here)"
		case sum != f.SHA256:
			return f.Path + " (different content)"
		}
		delete(got, f.Path)
	}
	for _, f := range have.Files {
		if _, extra := got[f.Path]; extra {
			return f.Path + " (only here)"
		}
	}
	return ""
}

// contentIdentity digests every file of an image folder, in parallel, and
// names the folder by the relative paths and digests in split order.
func contentIdentity(dir string, splits []*fileSplit, opts Options) (Identity, error) {
	var files []string
	for _, s := range splits {
		files = append(files, s.files...)
	}
	sums := make([]string, len(files))
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10) // one per worker: not 32 KB of garbage per file
			for i := w; i < len(files); i += workers {
				sum, err := fileDigest(files[i], opts, buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
				sums[i] = sum
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Identity{}, firstErr
	}
	h := sha256.New()
	id := Identity{Files: make([]FileDigest, 0, len(files))}
	k := 0
	for _, s := range splits {
		for range s.files {
			rel, _ := filepath.Rel(dir, files[k])
			id.Files = append(id.Files, FileDigest{Path: filepath.ToSlash(rel), SHA256: sums[k]})
			fmt.Fprintf(h, "%s\x00%s\n", filepath.ToSlash(rel), sums[k])
			k++
		}
		h.Write([]byte{0xff})
	}
	id.Hash = hex.EncodeToString(h.Sum(nil))
	return id, nil
}

// fileDigest is the SHA-256 of a file's bytes, memoised by path, size and
// modification time.
func fileDigest(path string, opts Options, buf []byte) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fileError(path, err)
	}
	key := fmt.Sprintf("file\x00%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	if v, ok := opts.Hashes.get(key); ok {
		return v, nil
	}
	f, err := opts.open(path)
	if err != nil {
		return "", fileError(path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", fileError(path, err)
	}
	v := hex.EncodeToString(h.Sum(nil))
	opts.Hashes.put(key, v)
	return v, nil
}

// fileError tells a data problem that waiting cannot mend (a missing or
// unreadable file: ErrBadData, never retried) from an I/O error that may
// pass (a network file system's hiccup: retried).
func fileError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %s: %v", ErrBadData, path, err)
	}
	return fmt.Errorf("read %s: %w", path, err)
}

// open opens a data file, through opts.OpenFile when set.
func (o Options) open(path string) (io.ReadCloser, error) {
	if o.OpenFile != nil {
		return o.OpenFile(path)
	}
	return os.Open(path)
}
