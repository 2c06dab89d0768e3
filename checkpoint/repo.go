package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/resomap/resomap/store"
)

// Blobs is what a Repo needs of a store (store.Store satisfies it).
type Blobs interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]store.Info, error)
	Delete(ctx context.Context, key string) error
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	Stat(ctx context.Context, key string) (store.Info, error)
	URL() string
}

// Repo stores checkpoints of many combinations under Prefix, one directory
// per combination in the user's layout {family}/{model}/{resolution}.
type Repo struct {
	Blobs  Blobs
	Prefix string // e.g. "runs/<config-namespace>"; may be empty
}

// KeepEpochs is how many per-epoch checkpoints retention keeps besides best
// and final.
const KeepEpochs = 3

// KeyInfo is what a record key says in the layout
// <prefix>/{family}/{model}/{resolution}/{base}.json.
type KeyInfo struct {
	Dir        string // the combination's folder
	Family     string
	Model      string
	Resolution int
	Base       string // epoch_0003, mid_e0004_s000150, best_model, final_model
}

// ParseRecordKey reads a record key; ok is false for anything else (tensor
// files, the latest.json pointers of older versions).
func ParseRecordKey(key string) (k KeyInfo, ok bool) {
	base, isJSON := strings.CutSuffix(key, ".json")
	parts := strings.Split(base, "/")
	if !isJSON || len(parts) < 4 || parts[len(parts)-1] == "latest" {
		return KeyInfo{}, false
	}
	n := len(parts)
	res, err := strconv.Atoi(parts[n-2])
	if err != nil {
		return KeyInfo{}, false
	}
	return KeyInfo{Dir: path.Dir(key), Family: parts[n-4], Model: parts[n-3], Resolution: res, Base: parts[n-1]}, true
}

// DirOf is the key prefix of one combination.
func (r Repo) DirOf(family, model string, resolution int) string {
	return path.Join(r.Prefix, Dir(family, model, resolution))
}

// RecordKey is the key of the record of rec's combination stored under base.
func (r Repo) RecordKey(rec Record, base string) string {
	return RecordFile(path.Join(r.DirOf(rec.Family, rec.Model, rec.Resolution), base))
}

// ErrCommitted: another attempt committed a different checkpoint under the
// same name first. This attempt's work is discarded; a retry continues from
// the committed one.
var ErrCommitted = errors.New("another attempt committed this checkpoint first")

// Save commits c under its base name. Tensor files are named by their
// content (so no write can change a file a record points at), then the
// record is created only if absent: each checkpoint is committed once, and
// a checkpoint can never be torn. Saving the same checkpoint again is a
// no-op; a different one under a committed name is ErrCommitted, and its
// files are removed. It returns the record's key, which the activity
// heartbeats.
func (r Repo) Save(ctx context.Context, c *Checkpoint) (string, error) {
	rec := r.named(c.Record)
	b, err := rec.Marshal()
	if err != nil {
		return "", err
	}
	if !c.FilesStored {
		if err := r.SaveFiles(ctx, c); err != nil {
			return "", err
		}
	}
	key := RecordFile(path.Join(r.DirOf(rec.Family, rec.Model, rec.Resolution), rec.BaseName()))
	err = r.Blobs.PutIfAbsent(ctx, key, b)
	if errors.Is(err, store.ErrExists) {
		return key, r.lostCommit(ctx, key, rec)
	}
	return key, err
}

// SaveFiles stores c's tensor files, named by content, without committing
// c: an epoch's are stored while its validation runs, and Save commits the
// record (with FilesStored) once it is final.
func (r Repo) SaveFiles(ctx context.Context, c *Checkpoint) error {
	rec := r.named(c.Record)
	dir := r.DirOf(rec.Family, rec.Model, rec.Resolution)
	for _, f := range []struct {
		name string
		data []byte
	}{{rec.ModelFile.Name, c.Model}, {rec.OptimFile.Name, c.Optim}} {
		if err := r.Blobs.Put(ctx, path.Join(dir, f.name), bytes.NewReader(f.data)); err != nil {
			return err
		}
	}
	return nil
}

// named fills in the names of rec's tensor files.
func (r Repo) named(rec Record) Record {
	base := rec.BaseName()
	rec.ModelFile.Name = contentName(base, rec.ModelFile, ".safetensors")
	rec.OptimFile.Name = contentName(base, rec.OptimFile, ".optim.safetensors")
	return rec
}

// contentName names a tensor file by its checkpoint and content.
func contentName(base string, f FileSum, suffix string) string {
	return base + "." + f.SHA256[:16] + suffix
}

// lostCommit handles a record that already existed: the same checkpoint
// (a retried save) is fine; another one wins, and ours is removed.
func (r Repo) lostCommit(ctx context.Context, key string, ours Record) error {
	b, err := r.read(ctx, key)
	if err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	theirs, err := UnmarshalRecord(b)
	if err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	if theirs.ModelFile.SHA256 == ours.ModelFile.SHA256 && theirs.OptimFile.SHA256 == ours.OptimFile.SHA256 {
		return nil
	}
	dir := path.Dir(key)
	for _, f := range []FileSum{ours.ModelFile, ours.OptimFile} {
		if f.Name != theirs.ModelFile.Name && f.Name != theirs.OptimFile.Name {
			_ = r.Blobs.Delete(ctx, path.Join(dir, f.Name))
		}
	}
	return fmt.Errorf("%s: %w", key, ErrCommitted)
}

// tensorKeys are the keys of a record's two tensor files.
func tensorKeys(recordKey string, rec Record) (model, optim string) {
	base := strings.TrimSuffix(recordKey, ".json")
	model, optim = ModelFile(base), OptimFile(base)
	if rec.ModelFile.Name != "" {
		model = path.Join(path.Dir(recordKey), rec.ModelFile.Name)
	}
	if rec.OptimFile.Name != "" {
		optim = path.Join(path.Dir(recordKey), rec.OptimFile.Name)
	}
	return model, optim
}

// Export makes a verified copy of the checkpoint at recordKey under base
// in the same folder, with plain names (base.safetensors,
// base.optim.safetensors, base.json) for people and PyTorch: best_model and
// final_model once a combination is done. The tensor files are copied by
// the store (a hard link on a file store, a server-side copy on S3), so a
// checkpoint's bytes are written once. The copy's record is written last
// and only if absent, so a copy is never torn; an export interrupted before
// it is completed again by the next call.
func (r Repo) Export(ctx context.Context, recordKey, base string) (string, error) {
	rec, err := r.Verify(ctx, recordKey)
	if err != nil {
		return "", err
	}
	dir := path.Dir(recordKey)
	k := path.Join(dir, base)
	if r.exported(ctx, k, rec) {
		return RecordFile(k), nil
	}
	out := rec
	out.ModelFile.Name, out.OptimFile.Name = "", ""
	b, err := out.Marshal()
	if err != nil {
		return "", err
	}
	// A copy there of another checkpoint (an older version's rolling copy)
	// or one that lost its data is replaced: uncommitted first.
	if err := r.Blobs.Delete(ctx, RecordFile(k)); err != nil {
		return "", err
	}
	if err := store.Copy(ctx, r.Blobs, path.Join(dir, rec.ModelFile.Name), ModelFile(k)); err != nil {
		return "", err
	}
	if err := store.Copy(ctx, r.Blobs, path.Join(dir, rec.OptimFile.Name), OptimFile(k)); err != nil {
		return "", err
	}
	if err := r.Blobs.PutIfAbsent(ctx, RecordFile(k), b); err != nil && !errors.Is(err, store.ErrExists) {
		return "", err
	}
	return RecordFile(k), nil
}

// exported reports whether base k already holds a copy of rec: its record
// names the same content and its files are there, whole.
func (r Repo) exported(ctx context.Context, k string, rec Record) bool {
	b, err := r.read(ctx, RecordFile(k))
	if err != nil {
		return false
	}
	have, err := UnmarshalRecord(b)
	if err != nil || have.ModelFile.SHA256 != rec.ModelFile.SHA256 || have.OptimFile.SHA256 != rec.OptimFile.SHA256 {
		return false
	}
	for key, size := range map[string]int64{ModelFile(k): rec.ModelFile.Size, OptimFile(k): rec.OptimFile.Size} {
		if info, err := r.Blobs.Stat(ctx, key); err != nil || info.Size != size {
			return false
		}
	}
	return true
}

func (r Repo) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := r.Blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Verify checks the checkpoint at recordKey without keeping its tensors:
// both files are streamed through SHA-256 (memory stays flat whatever the
// checkpoint's size).
func (r Repo) Verify(ctx context.Context, recordKey string) (Record, error) {
	rb, err := r.read(ctx, recordKey)
	if err != nil {
		return Record{}, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
	}
	rec, err := UnmarshalRecord(rb)
	if err != nil {
		return Record{}, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
	}
	mk, ok := tensorKeys(recordKey, rec)
	for _, f := range []struct {
		key  string
		want FileSum
	}{{mk, rec.ModelFile}, {ok, rec.OptimFile}} {
		rc, err := r.Blobs.Get(ctx, f.key)
		if err != nil {
			return rec, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return rec, fmt.Errorf("verify checkpoint %s: %w", recordKey, err)
		}
		if n != f.want.Size || hex.EncodeToString(h.Sum(nil)) != f.want.SHA256 {
			return rec, fmt.Errorf("verify checkpoint %s: %w: %s has %d bytes or another SHA-256 than its record says", recordKey, ErrCorrupt, f.key, n)
		}
	}
	return rec, nil
}

// readSized reads an object the record says is size bytes into one buffer
// of that size (a large checkpoint is not grown by doubling); a shorter or
// longer object fails verification afterwards.
func (r Repo) readSized(ctx context.Context, key string, size int64) ([]byte, error) {
	rc, err := r.Blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, max(size, 0)+1) // one more byte shows an object that is too long
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// Load reads and verifies the checkpoint whose record is at recordKey.
func (r Repo) Load(ctx context.Context, recordKey string) (*Checkpoint, error) {
	if !strings.HasSuffix(recordKey, ".json") {
		return nil, fmt.Errorf("load checkpoint %s: not a record key (.json)", recordKey)
	}
	rb, err := r.read(ctx, recordKey)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	rec, err := UnmarshalRecord(rb)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	c := &Checkpoint{Record: rec}
	mk, ok2 := tensorKeys(recordKey, rec)
	if c.Model, err = r.readSized(ctx, mk, rec.ModelFile.Size); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	if c.Optim, err = r.readSized(ctx, ok2, rec.OptimFile.Size); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	return c, nil
}

// Problem is a checkpoint that failed verification while looking for the
// latest good one.
type Problem struct {
	Key string
	Err error
}

// Records lists the record keys of resume checkpoints (epoch and mid) in a
// combination's directory, newest training position first.
func (r Repo) Records(ctx context.Context, dir string) ([]string, error) {
	infos, err := r.Blobs.List(ctx, dir+"/")
	if err != nil {
		return nil, err
	}
	type pos struct {
		key         string
		epoch, step int
	}
	var ps []pos
	for _, in := range infos {
		name := path.Base(in.Key)
		var e, s int
		switch {
		case strings.HasSuffix(name, ".json") && strings.HasPrefix(name, "mid_e"):
			if _, err := fmt.Sscanf(name, "mid_e%d_s%d.json", &e, &s); err != nil {
				continue
			}
			e-- // mid names carry the 1-based epoch in progress
		case strings.HasSuffix(name, ".json") && strings.HasPrefix(name, "epoch_"):
			if _, err := fmt.Sscanf(name, "epoch_%d.json", &e); err != nil {
				continue
			}
		default:
			continue
		}
		ps = append(ps, pos{in.Key, e, s})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].epoch != ps[j].epoch {
			return ps[i].epoch > ps[j].epoch
		}
		return ps[i].step > ps[j].step
	})
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.key
	}
	return keys, nil
}

// LoadLatest returns the newest checkpoint of a combination that verifies,
// with every newer one that did not. (nil, problems, nil) means there is no
// good checkpoint: training starts from scratch only then. It scans records
// rather than trusting the latest pointer, so a crash between a record and
// the pointer's update loses nothing.
func (r Repo) LoadLatest(ctx context.Context, family, model string, resolution int) (*Checkpoint, []Problem, error) {
	dir := r.DirOf(family, model, resolution)
	keys, err := r.Records(ctx, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list checkpoints in %s: %w", dir, err)
	}
	var problems []Problem
	for _, k := range keys {
		c, err := r.Load(ctx, k)
		if err == nil {
			return c, problems, nil
		}
		if ctx.Err() != nil {
			return nil, problems, ctx.Err()
		}
		problems = append(problems, Problem{Key: k, Err: err})
	}
	return nil, problems, nil
}

// LoadWeights reads a checkpoint's record and model file only (what
// evaluating it needs), verified against the record.
func (r Repo) LoadWeights(ctx context.Context, recordKey string) (Record, []byte, error) {
	rb, err := r.read(ctx, recordKey)
	if err != nil {
		return Record{}, nil, fmt.Errorf("load weights %s: %w", recordKey, err)
	}
	rec, err := UnmarshalRecord(rb)
	if err != nil {
		return Record{}, nil, fmt.Errorf("load weights %s: %w", recordKey, err)
	}
	mk, _ := tensorKeys(recordKey, rec)
	b, err := r.readSized(ctx, mk, rec.ModelFile.Size)
	if err != nil {
		return Record{}, nil, fmt.Errorf("load weights %s: %w", recordKey, err)
	}
	if got := sum(b); got.SHA256 != rec.ModelFile.SHA256 {
		return Record{}, nil, fmt.Errorf("load weights %s: %w: model file SHA-256 %.12s, record says %.12s", recordKey, ErrCorrupt, got.SHA256, rec.ModelFile.SHA256)
	}
	return rec, b, nil
}

// Newest is the record key of a combination's newest checkpoint ("" when
// there is none), read from the listing alone: a worker that holds that
// checkpoint's training in memory needs nothing more.
func (r Repo) Newest(ctx context.Context, family, model string, resolution int) (string, error) {
	keys, err := r.Records(ctx, r.DirOf(family, model, resolution))
	if err != nil || len(keys) == 0 {
		return "", err
	}
	return keys[0], nil
}

// Prunable lists the base keys that retention may delete in a combination's
// directory. It first finds the newest checkpoint that verifies; only
// checkpoints older than that one are candidates, and of those it keeps the
// newest keep epoch checkpoints, the newest mid-epoch one and the best
// epoch (which best_model refers to until the combination is done and its
// copy is exported). best_model and final_model copies are never listed.
// So retention can never delete the only good checkpoint, whatever
// happened to the newer ones, nor the best weights.
func (r Repo) Prunable(ctx context.Context, dir string, keep int) ([]string, error) {
	keys, err := r.Records(ctx, dir)
	if err != nil {
		return nil, err
	}
	good := -1
	var best string // the best epoch's base, which best_model refers to
	for i, k := range keys {
		if rec, err := r.Verify(ctx, k); err == nil {
			good = i
			best = path.Join(dir, EpochBase(rec.BestEpoch))
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if good < 0 {
		return nil, nil
	}
	var doomed []string
	mids, epochs := 0, 0
	for i := good; i < len(keys); i++ {
		base := strings.TrimSuffix(keys[i], ".json")
		if base == best {
			continue
		}
		if strings.HasPrefix(path.Base(base), "mid_") {
			mids++
			if i > good && mids > 1 {
				doomed = append(doomed, base)
			}
		} else {
			epochs++
			if i > good && epochs > keep {
				doomed = append(doomed, base)
			}
		}
	}
	return doomed, nil
}

// DeleteCheckpoint removes one checkpoint: its record first, so that it
// stops counting before its data goes.
func (r Repo) DeleteCheckpoint(ctx context.Context, base string) error {
	keys := []string{RecordFile(base), ModelFile(base), OptimFile(base)}
	if b, err := r.read(ctx, RecordFile(base)); err == nil {
		if rec, err := UnmarshalRecord(b); err == nil {
			m, o := tensorKeys(RecordFile(base), rec)
			keys = append(keys, m, o)
		}
	}
	for _, k := range keys {
		if err := r.Blobs.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete checkpoint %s: %w", base, err)
		}
	}
	return nil
}
