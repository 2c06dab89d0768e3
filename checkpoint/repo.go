package checkpoint

import (
	"bytes"
	"context"
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

// Save stores c under each of its base names: tensor files first, then the
// record (which commits it). It returns the key of
// the resume checkpoint's record, which the activity heartbeats.
func (r Repo) Save(ctx context.Context, c *Checkpoint) (string, error) {
	rec, err := c.Record.Marshal()
	if err != nil {
		return "", err
	}
	dir := r.DirOf(c.Record.Family, c.Record.Model, c.Record.Resolution)
	names := c.Record.BaseNames()
	for _, base := range names {
		k := path.Join(dir, base)
		if err := r.Blobs.Put(ctx, ModelFile(k), bytes.NewReader(c.Model)); err != nil {
			return "", err
		}
		if err := r.Blobs.Put(ctx, OptimFile(k), bytes.NewReader(c.Optim)); err != nil {
			return "", err
		}
		if err := r.Blobs.Put(ctx, RecordFile(k), bytes.NewReader(rec)); err != nil {
			return "", err
		}
	}
	return r.RecordKey(c.Record, names[0]), nil
}

func (r Repo) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := r.Blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Load reads and verifies the checkpoint whose record is at recordKey.
func (r Repo) Load(ctx context.Context, recordKey string) (*Checkpoint, error) {
	base, ok := strings.CutSuffix(recordKey, ".json")
	if !ok {
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
	if c.Model, err = r.read(ctx, ModelFile(base)); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", recordKey, err)
	}
	if c.Optim, err = r.read(ctx, OptimFile(base)); err != nil {
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

// Prunable lists the base keys that retention may delete in a combination's
// directory. It first finds the newest checkpoint that verifies; only
// checkpoints older than that one are candidates, and of those it keeps the
// newest keep epoch checkpoints and the newest mid-epoch one. best_model and
// final_model are separate copies and never listed. So retention can never
// delete the only good checkpoint, whatever happened to the newer ones.
func (r Repo) Prunable(ctx context.Context, dir string, keep int) ([]string, error) {
	keys, err := r.Records(ctx, dir)
	if err != nil {
		return nil, err
	}
	good := -1
	for i, k := range keys {
		if _, err := r.Load(ctx, k); err == nil {
			good = i
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
	for _, k := range []string{RecordFile(base), ModelFile(base), OptimFile(base)} {
		if err := r.Blobs.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete checkpoint %s: %w", base, err)
		}
	}
	return nil
}
