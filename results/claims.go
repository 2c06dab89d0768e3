package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/resomap/resomap/store"
)

// Claims are the claims on training configs: one combination workflow
// trains a config at a time, whichever sweeps ask for it.
//
// A claim moves by generations, each created only if absent, so every move
// is a compare-and-swap: claims/<config>/<generation>.json, the highest
// generation holding the state. Of two waiters taking over from the same
// dead holder, exactly one creates the next generation; a release is a
// generation with no owner. (claims/<config>.json, written before
// generations, counts as generation 0.)
type Claims struct {
	Store store.Store
}

// Claim says which combination workflow trains a config now ("": none).
type Claim struct {
	Owner string    `json:"owner"` // workflow ID
	Since time.Time `json:"since"`
}

// current is a config's claim now and its generation (-1: never claimed).
// A generation replaced (and deleted) while it was read is read again.
func (x Claims) current(ctx context.Context, configHash string) (gen int, c Claim, err error) {
	for range 3 {
		if gen, c, err = x.read(ctx, configHash); !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	return gen, c, err
}

func (x Claims) read(ctx context.Context, configHash string) (int, Claim, error) {
	infos, err := x.Store.List(ctx, claimDir(configHash)+"/")
	if err != nil {
		return 0, Claim{}, err
	}
	gen := -1
	for _, in := range infos {
		if g, ok := parseGenerationKey(configHash, in.Key); ok && g > gen {
			gen = g
		}
	}
	if gen < 0 {
		if _, err := x.Store.Stat(ctx, generationKey(configHash, 0)); err == nil {
			gen = 0
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, Claim{}, err
		} else {
			return -1, Claim{}, nil
		}
	}
	b, err := store.ReadAll(ctx, x.Store, generationKey(configHash, gen))
	if err != nil {
		return 0, Claim{}, err
	}
	var c Claim
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, Claim{}, fmt.Errorf("claim %s: %w", generationKey(configHash, gen), err)
	}
	return gen, c, nil
}

// move makes c the next generation after gen, if no one moved first: it
// says whether it did, and the claim as it stands.
func (x Claims) move(ctx context.Context, configHash string, gen int, c Claim) (Claim, bool, error) {
	b, _ := json.Marshal(c)
	err := x.Store.PutIfAbsent(ctx, generationKey(configHash, max(gen+1, 1)), b)
	if errors.Is(err, store.ErrExists) {
		_, now, err := x.current(ctx, configHash)
		return now, false, err
	}
	if err != nil {
		return Claim{}, false, err
	}
	for g := gen; g >= 0 && g > gen-2; g-- { // the generations it replaced
		_ = x.Store.Delete(ctx, generationKey(configHash, g))
	}
	return c, true, nil
}

// Take claims a config for c's owner; if another holds it, it returns that
// holder and granted false.
func (x Claims) Take(ctx context.Context, configHash string, c Claim) (holder Claim, granted bool, err error) {
	gen, cur, err := x.current(ctx, configHash)
	if err != nil {
		return Claim{}, false, err
	}
	if cur.Owner != "" {
		return cur, cur.Owner == c.Owner, nil
	}
	holder, granted, err = x.move(ctx, configHash, gen, c)
	return holder, granted || holder.Owner == c.Owner, err
}

// TakeOver gives the claim to c if from (a holder that has ended) still
// holds it; otherwise it says who does.
func (x Claims) TakeOver(ctx context.Context, configHash string, from, c Claim) (holder Claim, granted bool, err error) {
	gen, cur, err := x.current(ctx, configHash)
	if err != nil {
		return Claim{}, false, err
	}
	if cur.Owner != from.Owner {
		return cur, cur.Owner == c.Owner, nil
	}
	return x.move(ctx, configHash, gen, c)
}

// Release drops owner's claim on a config (nothing if another holds it).
func (x Claims) Release(ctx context.Context, configHash, owner string) error {
	gen, cur, err := x.current(ctx, configHash)
	if err != nil || cur.Owner != owner || gen < 0 {
		return err
	}
	_, _, err = x.move(ctx, configHash, gen, Claim{Since: time.Now().UTC()})
	return err
}
