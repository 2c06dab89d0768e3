package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
)

// importTree lists what a tree of the Python tool's checkpoints
// (DIR/{family}/{model}/{res}/best_model.pt) holds, read as a sweep reads
// them, and the init line and models and resolutions that start a sweep's
// combinations each from its own file. It changes nothing.
func importTree(o options, w io.Writer) error {
	if o.dir == "" {
		return fmt.Errorf("%w: starter import needs --dir, the folder holding {family}/{model}/{res}/best_model.pt", errUsage)
	}
	files, err := filepath.Glob(filepath.Join(o.dir, "*", "*", "*", "best_model.pt"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no {family}/{model}/{res}/best_model.pt under %s", sweep.ErrInvalid, o.dir)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tRES\tEPOCH\tVAL ACC\tVAL LOSS\tTENSORS\tA SWEEP")
	var models []string
	var resolutions []int
	usable := 0
	for _, f := range files {
		rel, _ := filepath.Rel(o.dir, f)
		parts := strings.Split(filepath.ToSlash(rel), "/") // family, model, res, file
		model, resText := parts[1], parts[2]
		verdict := "starts from it"
		res, err := strconv.Atoi(resText)
		info, lerr := sweep.LookupModel(model)
		sum, derr := pretrained.Describe(f)
		switch {
		case err != nil:
			verdict = fmt.Sprintf("skips it: %q is no resolution", resText)
		case lerr != nil:
			verdict = "skips it: " + lerr.Error()
		case info.CheckResolution(res) != nil:
			verdict = "skips it: " + info.CheckResolution(res).Error()
		case derr != nil:
			verdict = "refuses it: " + derr.Error()
		default:
			usable++
			if !slices.Contains(models, model) {
				models = append(models, model)
			}
			if !slices.Contains(resolutions, res) {
				resolutions = append(resolutions, res)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", model, resText, scalar(sum, "epoch"), scalar(sum, "val_accuracy", "val_acc", "best_acc1"),
			scalar(sum, "val_loss"), sum.Tensors, verdict)
	}
	tw.Flush()
	if usable == 0 {
		return fmt.Errorf("%w: none of the %d files can start a training", sweep.ErrInvalid, len(files))
	}
	slices.Sort(models)
	slices.Sort(resolutions)
	fmt.Fprintf(w, "\nIn a sweep file, each combination starts from its own file with:\n  models: %v\n  resolutions: %v\n  init: %s\n",
		models, resolutions, filepath.Join(o.dir, "{family}", "{model}", "{res}", "best_model.pt"))
	return nil
}

// scalar is the first of keys the summary holds, as text ("-": none).
func scalar(s pretrained.Summary, keys ...string) string {
	for _, k := range keys {
		switch v := s.Scalars[k].(type) {
		case float64:
			return strconv.FormatFloat(v, 'f', 4, 64)
		case nil:
			continue
		default:
			return fmt.Sprint(v)
		}
	}
	return "-"
}
