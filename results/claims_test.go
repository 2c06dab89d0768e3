package results_test

import (
	"context"
	"sync"
	"testing"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
)

// A claim is held by one workflow at a time: taken, refused to others,
// released by its holder only, and of many waiters that take over from the
// same dead holder at once exactly one gets it.
func TestClaimsMoveOneAtATime(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	x := results.Claims{Store: st}
	a, b := results.Claim{Owner: "sweep-a/m@16"}, results.Claim{Owner: "sweep-b/m@16"}
	if h, ok, err := x.Take(ctx, "cfg", a); err != nil || !ok || h.Owner != a.Owner {
		t.Fatalf("first take: %v %v %v", h, ok, err)
	}
	if h, ok, _ := x.Take(ctx, "cfg", b); ok || h.Owner != a.Owner {
		t.Fatalf("second take: granted %v, holder %s", ok, h.Owner)
	}
	if err := x.Release(ctx, "cfg", b.Owner); err != nil {
		t.Fatal(err)
	}
	if h, ok, _ := x.Take(ctx, "cfg", b); ok || h.Owner != a.Owner {
		t.Fatal("a release by a non-holder freed the claim")
	}
	if err := x.Release(ctx, "cfg", a.Owner); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := x.Take(ctx, "cfg", b); !ok {
		t.Fatal("a released claim was not granted")
	}

	// b dies; eight waiters take over at once.
	var mu sync.Mutex
	granted := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := results.Claim{Owner: "waiter-" + string(rune('a'+i))}
			h, ok, err := x.TakeOver(ctx, "cfg", b, me)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				granted[me.Owner] = true
			} else if h.Owner == b.Owner {
				t.Errorf("%s refused while the dead holder still holds it", me.Owner)
			}
		}()
	}
	wg.Wait()
	if len(granted) != 1 {
		t.Fatalf("%d waiters took the claim over: %v", len(granted), granted)
	}
	for w := range granted {
		if h, _, _ := x.Take(ctx, "cfg", a); h.Owner != w {
			t.Fatalf("holder %s, the winner was %s", h.Owner, w)
		}
	}
}
