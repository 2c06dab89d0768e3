package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// explain prints the sweep as it would run: every effective setting and
// where it came from (preset, file, flag or default), and how many
// combinations and trainings that makes. It contacts nothing.
func explain(o options, w io.Writer) error {
	spec, origins, err := loadSpecWithOrigins(o)
	if err != nil {
		return err
	}
	settings, err := sweep.Settings(spec)
	if err != nil {
		return err
	}
	cells := len(spec.Models) * len(spec.Resolutions)
	fmt.Fprintf(w, "sweep %s: %d models x %d resolutions = %d combinations, %d trainings (%d seeds each) of %d epochs\n\n",
		spec.Name, len(spec.Models), len(spec.Resolutions), cells, len(spec.Combinations()), max(1, len(spec.Seeds)), spec.Epochs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "setting\tvalue\tfrom")
	for _, s := range settings {
		origin := origins.Of(s.Key)
		if s.Key == "augment" && spec.Augment == "" {
			s.Value, origin = effectiveRecipe(spec.Data)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Value, origin)
	}
	tw.Flush()
	fmt.Fprintln(w)
	printEstimates(o.store, spec, w)
	return nil
}

// effectiveRecipe is the data recipe a spec that names none trains with,
// and why: the data kind's default, when the data is on this machine.
func effectiveRecipe(data string) (recipe, origin string) {
	r, err := dataset.DefaultAugment(data)
	if err != nil {
		return `""`, "default (the data kind's recipe; the data is not on this machine)"
	}
	kind := "image folder"
	if r == dataset.AugmentCIFAR {
		kind = "IDX data"
	}
	return r, "default for " + kind
}

// printEstimates estimates each combination's compute time (training and
// validation) from the epochs that earlier completed runs of the same
// model and resolution took, per device, as recorded in the store.
func printEstimates(storeURL string, spec sweep.Spec, w io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var done []sweep.Outcome
	if st, err := store.Open(ctx, storeURL); err == nil {
		done, _ = results.Index{Store: st}.Completed(ctx)
	}
	fmt.Fprintf(w, "estimated compute per training (%d epochs), from earlier runs in %s:\n", spec.Epochs, storeURL)
	for _, c := range uniqueCells(spec) {
		perEpoch, runs := map[string]float64{}, map[string]int{}
		for _, o := range done {
			if o.Model == c.Model && o.Resolution == c.Resolution && o.EpochsDone > 0 && o.TrainSeconds > 0 {
				perEpoch[o.Device] += (o.TrainSeconds + o.EvalSeconds) / float64(max(o.EpochRuns, o.EpochsDone))
				runs[o.Device]++
			}
		}
		if len(runs) == 0 {
			fmt.Fprintf(w, "  %s@%d: no estimate (no earlier run of it recorded)\n", c.Model, c.Resolution)
			continue
		}
		var parts []string
		for _, dev := range slices.Sorted(maps.Keys(runs)) {
			secs := perEpoch[dev] / float64(runs[dev]) * float64(spec.Epochs)
			parts = append(parts, fmt.Sprintf("%s on %s (%d runs)", fmtDuration(secs), dev, runs[dev]))
		}
		fmt.Fprintf(w, "  %s@%d: %s\n", c.Model, c.Resolution, strings.Join(parts, ", "))
	}
}

// uniqueCells are the spec's (model, resolution) pairs, seeds aside.
func uniqueCells(spec sweep.Spec) []sweep.Combination {
	var out []sweep.Combination
	for _, c := range spec.Combinations() {
		if c.Seed == 0 || len(out) == 0 || out[len(out)-1].Model != c.Model || out[len(out)-1].Resolution != c.Resolution {
			out = append(out, sweep.Combination{Model: c.Model, Resolution: c.Resolution})
		}
	}
	return out
}
