// Package results holds what a sweep produced: one record per completed
// training config (keyed by its hash, written once, so two workers can never
// both claim it, and replaced only to heal one recorded without its best
// and final models) and one outcome per combination of each sweep.
package results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// Index stores results and sweep outcomes in a store.
type Index struct {
	Store store.Store
}

// ErrAlreadyRecorded: another worker recorded this config's result first.
var ErrAlreadyRecorded = errors.New("result already recorded")

// Record writes the result of a completed config once. A second writer gets
// ErrAlreadyRecorded.
func (x Index) Record(ctx context.Context, sweepName string, o sweep.Outcome) (string, error) {
	rec := struct {
		Sweep string `json:"sweep"`
		sweep.Outcome
	}{sweepName, o}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	key := ResultKey(o.ConfigHash)
	err = x.Store.PutIfAbsent(ctx, key, b)
	if !errors.Is(err, store.ErrExists) {
		return key, err
	}
	prev, _, lerr := x.Lookup(ctx, o.ConfigHash)
	if lerr == nil && prev != nil && !prev.Exported() && o.Exported() {
		// Healed: the record another version wrote without its best or
		// final model is replaced by one with them, the only overwrite a
		// result ever gets (every writer that heals writes the same).
		return key, x.Store.Put(ctx, key, bytes.NewReader(b))
	}
	return key, fmt.Errorf("%s (%s): %w", o.ID(), key, ErrAlreadyRecorded)
}

// Lookup returns the result of a config, or nil if it has none.
func (x Index) Lookup(ctx context.Context, configHash string) (*sweep.Outcome, string, error) {
	b, err := store.ReadAll(ctx, x.Store, ResultKey(configHash))
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var rec struct {
		Sweep string `json:"sweep"`
		sweep.Outcome
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, "", fmt.Errorf("result %s: %w", ResultKey(configHash), err)
	}
	return &rec.Outcome, rec.Sweep, nil
}

// PutDataIdentity keeps a data set's identity (once per content hash).
func (x Index) PutDataIdentity(ctx context.Context, id dataset.Identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	if err := x.Store.PutIfAbsent(ctx, DataKey(id.Hash), b); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// DataIdentity reads a data set's identity kept by PutDataIdentity.
func (x Index) DataIdentity(ctx context.Context, dataHash string) (dataset.Identity, error) {
	var id dataset.Identity
	b, err := store.ReadAll(ctx, x.Store, DataKey(dataHash))
	if err != nil {
		return id, err
	}
	return id, json.Unmarshal(b, &id)
}

// PutSpec keeps a sweep's spec for the report.
func (x Index) PutSpec(ctx context.Context, spec sweep.Spec) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return x.Store.Put(ctx, SpecKey(spec.Name), bytes.NewReader(b))
}

// PutOutcome stores the latest outcome of a combination of a sweep.
func (x Index) PutOutcome(ctx context.Context, sweepName string, o sweep.Outcome) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return x.Store.Put(ctx, outcomeKey(sweepName, o.ID()), bytes.NewReader(b))
}

// Outcomes lists the stored outcomes of a sweep, by combination ID.
func (x Index) Outcomes(ctx context.Context, sweepName string) (map[string]sweep.Outcome, error) {
	infos, err := x.Store.List(ctx, OutcomesPrefix(sweepName))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, in := range infos {
		if _, ok := parseOutcomeKey(sweepName, in.Key); ok {
			keys = append(keys, in.Key)
		}
	}
	// Read concurrently: a sweep of thousands on S3 is thousands of GETs.
	read := make([]sweep.Outcome, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(outcomeReaders)
	for k, key := range keys {
		g.Go(func() error {
			b, err := store.ReadAll(gctx, x.Store, key)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &read[k]); err != nil {
				return fmt.Errorf("outcome %s: %w", key, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]sweep.Outcome, len(read))
	for _, o := range read {
		out[o.ID()] = o
	}
	return out, nil
}

// outcomeReaders is how many outcomes Outcomes reads at once.
const outcomeReaders = 16

// TestResult is a stored test-resolution result (nil when there is none).
func (x Index) TestResult(ctx context.Context, configHash string, res int) (*sweep.TestResult, error) {
	b, err := store.ReadAll(ctx, x.Store, TestResultKey(configHash, res))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r sweep.TestResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", TestResultKey(configHash, res), err)
	}
	return &r, nil
}

// PutTestResult stores a test-resolution result.
func (x Index) PutTestResult(ctx context.Context, configHash string, r sweep.TestResult) error {
	b, _ := json.Marshal(r)
	return x.Store.Put(ctx, TestResultKey(configHash, r.Resolution), bytes.NewReader(b))
}

// Completed lists the recorded results of every completed training (the
// files results/<config hash>.json).
func (x Index) Completed(ctx context.Context) ([]sweep.Outcome, error) {
	infos, err := x.Store.List(ctx, resultsDir+"/")
	if err != nil {
		return nil, err
	}
	var out []sweep.Outcome
	for _, in := range infos {
		hash, ok := ParseResultKey(in.Key)
		if !ok {
			continue // a test-resolution result, or a stray object
		}
		o, _, err := x.Lookup(ctx, hash)
		if err != nil {
			return nil, err
		}
		if o != nil {
			out = append(out, *o)
		}
	}
	return out, nil
}
