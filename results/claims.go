package results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/resomap/resomap/store"
)

// ClaimKey is where the claim on training a config is kept: one sweep
// trains a config at a time, others wait for its result.
func ClaimKey(configHash string) string { return path.Join("claims", configHash+".json") }

// Claim says which combination workflow trains a config now.
type Claim struct {
	Owner string    `json:"owner"` // workflow ID
	Since time.Time `json:"since"`
}

// Claims are the claims on training configs: one combination workflow
// trains a config at a time, whichever sweeps ask for it.
type Claims struct {
	Store store.Store
}

// Take claims a config for c's owner; if another holds it, it returns that
// holder and granted false.
func (x Claims) Take(ctx context.Context, configHash string, c Claim) (holder Claim, granted bool, err error) {
	b, _ := json.Marshal(c)
	err = x.Store.PutIfAbsent(ctx, ClaimKey(configHash), b)
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return Claim{}, false, err
	}
	cur, err := store.ReadAll(ctx, x.Store, ClaimKey(configHash))
	if err != nil {
		return Claim{}, false, err
	}
	if err := json.Unmarshal(cur, &holder); err != nil {
		return Claim{}, false, fmt.Errorf("claim %s: %w", ClaimKey(configHash), err)
	}
	return holder, holder.Owner == c.Owner, nil
}

// TakeOver gives the claim to c (its holder has ended).
func (x Claims) TakeOver(ctx context.Context, configHash string, c Claim) error {
	b, _ := json.Marshal(c)
	return x.Store.Put(ctx, ClaimKey(configHash), bytes.NewReader(b))
}

// Release drops owner's claim on a config (nothing if another holds it).
func (x Claims) Release(ctx context.Context, configHash, owner string) error {
	b, err := store.ReadAll(ctx, x.Store, ClaimKey(configHash))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var c Claim
	if json.Unmarshal(b, &c) == nil && c.Owner != owner {
		return nil
	}
	return x.Store.Delete(ctx, ClaimKey(configHash))
}
