package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/resomap/resomap/internal/lists"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/sweepclient"
	"github.com/resomap/resomap/workflows"
)

// add grows a sweep by --models, --resolutions and --seeds: a running one
// by the add update (its combinations train after those it has); a
// finished one is started again with the union, whose completed trainings
// are skipped as always.
func add(ctx context.Context, o options, w io.Writer, logger *slog.Logger) error {
	if o.sweep == "" && o.id == "" {
		return fmt.Errorf("%w: add needs --sweep NAME and --models, --resolutions or --seeds", errUsage)
	}
	in, err := addInput(o)
	if err != nil {
		return err
	}
	c, err := temporalx.DialAndRegister(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	id := sweepID(o)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return err
	case desc.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		// Resolutions that would measure upsampling of data on this
		// machine are refused here, as at a start (workers refuse them at
		// prepare otherwise).
		if spec, err := lastSpec(ctx, c, id, o, false); err == nil {
			if grown, _, err := workflows.Grown(spec, in); err == nil {
				if err := checkLocalData(grown); err != nil {
					return err
				}
			}
		}
		out, err := sweepclient.Client{Temporal: c}.Add(ctx, id, in)
		if err == nil {
			fmt.Fprintf(w, "sweep %s grew by %d combinations: %s\nWeb UI: %s\n", id, len(out.Added), shortList(out.Added, 10), uiURL(id))
			return nil
		}
		if !sweepclient.FinishedMeanwhile(err) {
			return fmt.Errorf("add to %s: %w", id, err)
		}
		// It ended meanwhile: wait for it to close, then start it again.
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
			logger.Info("the sweep ended", "err", err)
		}
	}
	spec, err := lastSpec(ctx, c, id, o, true)
	if err != nil {
		return err
	}
	grown, added, err := workflows.Grown(spec, in)
	if err != nil {
		return err
	}
	if err := checkLocalData(grown); err != nil {
		return err
	}
	fmt.Fprintf(w, "sweep %s has finished: starting it again with %d more combinations (%s); those it completed are skipped\n",
		spec.Name, len(added), strings.Join(ids(added), ", "))
	return startSweep(ctx, c, id, grown, o, w)
}

// addInput reads what --models, --resolutions and --seeds add.
func addInput(o options) (workflows.AddInput, error) {
	var in workflows.AddInput
	in.Models = lists.Strings(o.models)
	var err error
	if in.Resolutions, err = lists.Ints("resolutions", o.resolutions); err != nil {
		return in, fmt.Errorf("%w: %w", sweep.ErrInvalid, err)
	}
	if in.Seeds, err = lists.Uint64s("seeds", o.seeds); err != nil {
		return in, fmt.Errorf("%w: %w", sweep.ErrInvalid, err)
	}
	if len(in.Models)+len(in.Resolutions)+len(in.Seeds) == 0 {
		return in, fmt.Errorf("%w: add needs --models, --resolutions or --seeds", errUsage)
	}
	return in, nil
}

// lastSpec is the spec the sweep last ran with (sweepclient's LastSpec);
// for a sweep the server does not know, the one --sweep names.
func lastSpec(ctx context.Context, c client.Client, id string, o options, finished bool) (sweep.Spec, error) {
	if spec, ok := (sweepclient.Client{Temporal: c}).LastSpec(ctx, id, finished); ok {
		return spec, nil
	}
	bare := o
	bare.set = maps.Clone(o.set)
	for _, f := range []string{"models", "resolutions", "seeds"} {
		delete(bare.set, f) // here they add, not replace
	}
	return loadSpec(bare)
}

func ids(cs []sweep.Combination) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID())
	}
	return out
}

// shortList joins names, the first n of a longer list and how many more.
func shortList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
