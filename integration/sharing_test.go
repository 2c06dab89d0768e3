//go:build timing

package integration

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
)

// sharingSpec: smallcnn at two resolutions, three epochs each, at most par
// trainings at once.
func sharingSpec(name string, par int) string {
	return fmt.Sprintf(`name: %s
models: [smallcnn]
resolutions: [32, 48]
epochs: 3
data: fashion-mnist
allow_upsampling: true
train_limit: 8000
val_limit: 1000
seed: 5
max_parallel: %d
hyper: {batch_size: 64, optimizer: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: cosine, crop_padding: 2, flip: true}
`, name, par)
}

// Compute hours are each training's own device time: the same sweep (a
// cold data cache each time) run with max_parallel 1 and 2 gives each
// training the same compute hours, within 15%, on a worker with two
// training slots (with 2, the two trainings share the device, each on one
// of the two cores, which the report marks) and on a worker with one (with
// 2, the second training's epochs queue behind the first's, which its
// time split shows as waiting, not as fixed cost).
//
// The two-slot worker takes its default threads, one per slot, as a
// user's would, and pins each slot to its own core (engine.Slots):
// unpinned, two trainings side by side each took 6-17% more CPU time per
// image than one alone, pinned 1-5%. The one-slot worker trains on one
// thread, pinned to one core, the other left to the worker's other work
// (the next combination's preparation ran next to the first's epoch 1 and
// slowed it: 15% apart once over two epochs, unpinned): with two threads
// on these two cores the same training's epochs vary by up to 48% in CPU
// time (1.17-1.73 s, every setting alike), as anything else the machine
// runs stalls one of the two threads while the other spins at a barrier;
// that would measure the machine's noise, not max_parallel. Three epochs
// each, so that one epoch's neighbours weigh a third.
func TestComputeHoursDoNotDependOnMaxParallel(t *testing.T) {
	c := dial(t)
	// The figures again after the workers' logs (cleanups run last first),
	// so that a failure's reason is in the tail of the output.
	var summary []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("summary:\n%s", strings.Join(summary, "\n"))
		}
	})
	logf := func(format string, args ...any) {
		t.Helper()
		summary = append(summary, fmt.Sprintf(format, args...))
		t.Log(summary[len(summary)-1])
	}
	errorf := func(format string, args ...any) {
		t.Helper()
		summary = append(summary, "FAIL: "+fmt.Sprintf(format, args...))
		t.Error(summary[len(summary)-1])
	}
	type figures = sharingFigures
	sweepOf := func(slots, maxParallel, round int) map[string]figures {
		name := fmt.Sprintf("sharing-%d-%d-%d", slots, maxParallel, round)
		store, tq := t.TempDir(), "tq-"+name
		threads := map[int]string{2: "0", 1: "1"}[slots]
		w := startWorker(t, tq, store, "--data-cache", t.TempDir(), "--concurrency", fmt.Sprint(slots), "--threads", threads)
		defer stopProcess(w.cmd)
		if out, err := starter(t, tq, store, "--sweep", writeSpec(t, sharingSpec(name, maxParallel)), "--id", name); err != nil {
			errorf("starter: %v\n%s", err, out)
			t.FailNow()
		}
		got := map[string]figures{}
		for _, o := range result(t, c, name, 5*time.Minute).Combos {
			sp, ok := o.EpochSplit()
			if o.Status != sweep.Completed || !ok {
				errorf("%s: %s %s", name, o.ID(), o.Status)
				t.FailNow()
			}
			got[o.ID()] = figures{o.ComputeHours(), o.WaitSeconds, o.SharedEpochs}
			logf("round %d, %d slots, max_parallel %d: %s: %.2f device s (train+val %.2f s), %d of %d epochs shared; per epoch %s",
				round, slots, maxParallel, o.ID(), 3600*o.ComputeHours(), o.TrainSeconds+o.EvalSeconds, o.SharedEpochs, o.EpochRuns, sp)
		}
		return got
	}
	total := func(m map[string]figures) (waiting float64, shared int) {
		for _, f := range m {
			waiting, shared = waiting+f.waiting, shared+f.shared
		}
		return waiting, shared
	}
	// Noise on a shared machine only ever adds CPU time, and it comes and
	// goes within minutes, so the test measures up to three rounds (a round
	// runs both settings afresh, one after the other) and passes when one
	// round's pair agrees, or when each setting's least figure over the
	// rounds agrees (as benchmarks take the fastest run). Either alone
	// flaked on CI: one noisy round put one training 22% apart; one lucky
	// round made max_parallel 1's least 5.12 s against 6.5 s in the two
	// rounds after it, where the pairs were 7% apart. A real dependence on
	// max_parallel (waiting counted as compute: 15 s on 6 s here) shows in
	// every round, paired or least, and fails.
	const rounds = 3
	for _, slots := range []int{2, 1} {
		one, two := map[string]figures{}, map[string]figures{}
		for round := 1; round <= rounds; round++ {
			r1, r2 := sweepOf(slots, 1, round), sweepOf(slots, 2, round)
			keepLeast(one, r1)
			keepLeast(two, r2)
			if round == 1 {
				w1, s1 := total(r1)
				w2, s2 := total(r2)
				if slots == 2 && (s1 != 0 || s2 == 0) {
					errorf("2 slots: epochs marked shared: %d with max_parallel 1, %d with 2; want 0 and some", s1, s2)
				}
				if slots == 1 && (w2 < 1 || w2 < 4*w1) {
					errorf("1 slot: waiting %.2f s with max_parallel 2, %.2f s with 1; want the queueing to show", w2, w1)
				}
			}
			for id, f := range r2 {
				logf("%d slots, round %d: %s: compute hours with max_parallel 2 and 1 %.0f%% apart (target 15%%)", slots, round, id, 100*apart(f, r1[id]))
			}
			for id, f := range two {
				logf("%d slots, least after round %d: %s: %.0f%% apart", slots, round, id, 100*apart(f, one[id]))
			}
			if worstApart(r2, r1) <= 0.15 || worstApart(two, one) <= 0.15 {
				break
			}
			if round == rounds {
				for id, f := range two {
					errorf("%d slots: %s: no round agreed within 15%%; least of %d rounds: %.2f device s with max_parallel 2, %.2f with 1 (%.0f%% apart)",
						slots, id, rounds, 3600*f.hours, 3600*one[id].hours, 100*apart(f, one[id]))
				}
			}
		}
	}
}

// apart is how far two figures of one training are apart, relative to b.
func apart(a, b sharingFigures) float64 { return math.Abs(a.hours/b.hours - 1) }

// worstApart is the largest apart over the trainings of a (each must be
// in b: a training missing from b counts as infinitely apart).
func worstApart(a, b map[string]sharingFigures) float64 {
	worst := 0.0
	for id, f := range a {
		g, ok := b[id]
		if !ok {
			return math.Inf(1)
		}
		worst = math.Max(worst, apart(f, g))
	}
	return worst
}

// sharingFigures is what the test reads of one training.
type sharingFigures struct {
	hours, waiting float64
	shared         int
}

// keepLeast keeps in least each training's smallest compute hours so far.
func keepLeast(least, round map[string]sharingFigures) {
	for id, f := range round {
		if old, ok := least[id]; !ok || f.hours < old.hours {
			least[id] = f
		}
	}
}
