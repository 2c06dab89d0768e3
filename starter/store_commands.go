package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/lists"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/workflows"
)

// The commands that read the store directly: checkpoints, gc and report
// (report --watch asks Temporal only whether the sweep still runs).

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
	for _, m := range lists.Strings(o.models) {
		models[m] = true
	}
	resolutions := map[string]bool{}
	for _, r := range lists.Strings(o.resolutions) {
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
	r.Links = report.Links{WorkflowURL: uiURL}
	if out == "" {
		out = filepath.Join("reports", sweepName)
	}
	files, err := r.Write(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreport: %s/index.html (%d files: index.html, resomap.png/.svg, heatmap, pareto, test-resolution map, learning curves, results.csv/.json, test_resolutions.csv, README.md)\n", out, len(files))
	r.Table(w)
	return nil
}

func reportCmd(ctx context.Context, o options, w io.Writer, logger *slog.Logger) error {
	if o.sweep == "" {
		return fmt.Errorf("%w: report needs --sweep NAME", errUsage)
	}
	name := sweepName(o.sweep)
	if !o.watch {
		return writeReport(ctx, o.store, name, o.out, o.pricePerHour, w)
	}
	return watchReport(ctx, o, name, w, logger)
}

// watchReport rewrites the report whenever a result arrives, until the
// sweep's workflow has closed (then once more) or ctx ends. Before the
// first result it waits, saying so.
func watchReport(ctx context.Context, o options, name string, w io.Writer, logger *slog.Logger) error {
	c, err := temporalx.Dial(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.id
	if id == "" {
		id = workflows.SweepID(name)
	}
	last := ""
	for {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return fmt.Errorf("watch %s: %w", id, err)
		}
		running := d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		outcomes, err := outcomeStamp(ctx, o.store, name)
		if err != nil {
			return err
		}
		if outcomes != last || !running {
			last = outcomes
			err := writeReport(ctx, o.store, name, o.out, o.pricePerHour, w)
			if err != nil && !errors.Is(err, report.ErrNoSweep) {
				return err
			}
			if err != nil {
				fmt.Fprintf(w, "%s: no result yet; watching\n", name)
			}
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(o.watchEvery, 100*time.Millisecond)):
		}
	}
}

// outcomeStamp names the state of a sweep's recorded outcomes (their keys,
// sizes and times), so a report is rewritten only when one changed.
func outcomeStamp(ctx context.Context, storeURL, name string) (string, error) {
	st, err := store.Open(ctx, storeURL)
	if err != nil {
		return "", err
	}
	infos, err := st.List(ctx, results.OutcomesPrefix(name))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, i := range infos {
		fmt.Fprintf(&b, "%s %d %d\n", i.Key, i.Size, i.ModTime.UnixNano())
	}
	return b.String(), nil
}
