package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
)

// The commands that read the store directly, without Temporal:
// checkpoints, gc and report.

// listRuns opens the store and lists every checkpoint file in it.
func listRuns(ctx context.Context, storeURL string) (store.Store, []store.Info, error) {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return nil, nil, err
	}
	infos, err := st.List(ctx, results.RunsDir+"/")
	return st, infos, err
}

// checkpoints lists every stored checkpoint per combination and whether it
// verifies.
func checkpoints(ctx context.Context, o options, w io.Writer) error {
	st, infos, err := listRuns(ctx, o.store)
	if err != nil {
		return err
	}
	models := map[string]bool{}
	for _, m := range splitList(o.models) {
		models[m] = true
	}
	resolutions := map[string]bool{}
	for _, r := range splitList(o.resolutions) {
		resolutions[r] = true
	}
	repo := checkpoint.Repo{Store: st}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tresolution\tcheckpoint\tepoch\tstep\tval loss\tval acc\tsize\ttime\tverified\tkey")
	n := 0
	for _, in := range infos {
		k, ok := checkpoint.ParseKey(in.Key)
		if !ok || len(models) > 0 && !models[k.Model] || len(resolutions) > 0 && !resolutions[strconv.Itoa(k.Resolution)] {
			continue
		}
		verified := "yes"
		c, err := repo.Load(ctx, in.Key)
		var r checkpoint.Record
		if err != nil {
			verified = "NO: " + err.Error()
			if b, rerr := store.ReadAll(ctx, st, in.Key); rerr == nil {
				r, _ = checkpoint.UnmarshalRecord(b)
			}
		} else {
			r = c.Record
		}
		vl, va := "-", "-"
		if k := len(r.Metrics); k > 0 {
			vl, va = fmt.Sprintf("%.4f", r.Metrics[k-1].ValLoss), fmt.Sprintf("%.4f", r.Metrics[k-1].ValAcc)
		}
		size := r.ModelFile.Size + r.OptimFile.Size + in.Size
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%.1f MB\t%s\t%s\t%s\n", k.Model, k.Resolution, k.Name, r.EpochsDone, r.StepInEpoch,
			vl, va, float64(size)/1e6, r.CreatedAt.Local().Format(time.DateTime), verified, in.Key)
		n++
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintf(w, "no checkpoints in %s\n", st.URL())
	}
	return nil
}

// gc applies retention to every combination in the store.
func gc(ctx context.Context, o options, w io.Writer) error {
	st, infos, err := listRuns(ctx, o.store)
	if err != nil {
		return err
	}
	combos := map[string]checkpoint.Combo{}
	for _, in := range infos {
		if k, ok := checkpoint.ParseKey(in.Key); ok {
			combos[k.Dir()] = k.Combo
		}
	}
	repo := checkpoint.Repo{Store: st}
	total, orphans := 0, 0
	for _, d := range slices.Sorted(maps.Keys(combos)) {
		doomed, err := repo.Prunable(ctx, combos[d], checkpoint.KeepEpochs)
		if err != nil {
			return err
		}
		verb := map[bool]string{true: "would delete", false: "deleting"}[o.dryRun]
		for _, ref := range doomed.Checkpoints {
			fmt.Fprintf(w, "%s %s\n", verb, ref.Key())
		}
		for _, k := range doomed.Orphans {
			fmt.Fprintf(w, "%s %s (no record points at it)\n", verb, k)
		}
		total += len(doomed.Checkpoints)
		orphans += len(doomed.Orphans)
		if !o.dryRun {
			if _, err := repo.Delete(ctx, doomed); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(w, "%d checkpoints and %d orphaned tensor files %s\n", total, orphans, map[bool]string{true: "would be deleted", false: "deleted"}[o.dryRun])
	if s3, ok := st.(*store.S3); ok && !o.dryRun {
		aborted, err := s3.AbortStaleUploads(ctx, 24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d abandoned multipart uploads aborted\n", len(aborted))
	}
	return nil
}

// writeReport builds the sweep's report folder and prints its table.
func writeReport(ctx context.Context, storeURL, sweepName, out string, pricePerHour float64, w io.Writer) error {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	r, err := report.Build(ctx, st, sweepName)
	if err != nil {
		return err
	}
	if pricePerHour > 0 {
		r.Price(pricePerHour)
	}
	if out == "" {
		out = filepath.Join("reports", sweepName)
	}
	files, err := r.Write(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreport: %s (%d files: resomap.png/.svg, heatmap, pareto, test-resolution map, learning curves, results.csv/.json, test_resolutions.csv, README.md)\n", out, len(files))
	r.Table(w)
	return nil
}

func reportCmd(ctx context.Context, o options, w io.Writer) error {
	if o.sweep == "" {
		return fmt.Errorf("%w: report needs --sweep NAME", errUsage)
	}
	return writeReport(ctx, o.store, sweepName(o.sweep), o.out, o.pricePerHour, w)
}
