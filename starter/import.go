package main

import (
	"fmt"
	"io"
	"os"
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
// combinations each from its own file (naming the combinations that would
// have none). It changes nothing.
func importTree(o options, w io.Writer) error {
	if o.dir == "" {
		return fmt.Errorf("%w: starter import needs --dir, the folder holding {family}/{model}/{res}/best_model.pt", errUsage)
	}
	dir, err := filepath.Abs(o.dir) // the workers read it from their own folders
	if err != nil {
		return err
	}
	files, err := checkpointTree(dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no {family}/{model}/{res}/best_model.pt under %s", sweep.ErrInvalid, dir)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tRES\tEPOCH\tVAL ACC\tVAL LOSS\tTENSORS\tA SWEEP")
	var t importable
	for _, f := range files {
		sum, verdict := t.judge(dir, f)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f[1], f[2], scalar(sum, "epoch"), scalar(sum, "val_accuracy", "val_acc", "best_acc1"),
			scalar(sum, "val_loss"), sum.Tensors, verdict)
	}
	tw.Flush()
	if len(t.usable) == 0 {
		return fmt.Errorf("%w: none of the %d files can start a training", sweep.ErrInvalid, len(files))
	}
	t.printInit(w, dir)
	return nil
}

// importable is what a tree of checkpoints can start: its models and
// resolutions, and the trainings that have a file.
type importable struct {
	models      []string
	resolutions []int
	usable      map[string]bool
}

// judge says what a sweep does with file f (family, model, res) of dir,
// with the file's summary where it reads it.
func (t *importable) judge(dir string, f [3]string) (pretrained.Summary, string) {
	family, model, resText := f[0], f[1], f[2]
	res, resErr := strconv.Atoi(resText)
	info, lookupErr := sweep.LookupModel(model)
	switch {
	case resErr != nil:
		return pretrained.Summary{}, fmt.Sprintf("skips it: %q is no resolution", resText)
	case lookupErr != nil:
		return pretrained.Summary{}, "skips it: " + lookupErr.Error()
	case family != info.Family:
		return pretrained.Summary{}, fmt.Sprintf("skips it: a sweep looks for %s in %s/, not %s/", model, info.Family, family)
	case info.CheckResolution(res) != nil:
		return pretrained.Summary{}, "skips it: " + info.CheckResolution(res).Error()
	}
	sum, err := pretrained.Describe(filepath.Join(dir, family, model, resText, "best_model.pt"))
	if err != nil {
		return sum, "refuses it: " + err.Error()
	}
	if t.usable == nil {
		t.usable = map[string]bool{}
	}
	t.usable[sweep.TrainingID(model, res, 0)] = true
	if !slices.Contains(t.models, model) {
		t.models = append(t.models, model)
	}
	if !slices.Contains(t.resolutions, res) {
		t.resolutions = append(t.resolutions, res)
	}
	return sum, "starts from it"
}

// printInit prints the sweep file's lines that start each combination from
// its own file, and the combinations they would make with none.
func (t *importable) printInit(w io.Writer, dir string) {
	slices.Sort(t.models)
	slices.Sort(t.resolutions)
	var res []string
	for _, r := range t.resolutions {
		res = append(res, strconv.Itoa(r))
	}
	fmt.Fprintf(w, "\nIn a sweep file, each combination starts from its own file with:\n  models: [%s]\n  resolutions: [%s]\n  init: %s\n",
		strings.Join(t.models, ", "), strings.Join(res, ", "), filepath.Join(dir, "{family}", "{model}", "{res}", "best_model.pt"))
	var gaps []string
	for _, m := range t.models {
		for _, r := range t.resolutions {
			if id := sweep.TrainingID(m, r, 0); !t.usable[id] {
				gaps = append(gaps, id)
			}
		}
	}
	if len(gaps) > 0 {
		fmt.Fprintf(w, "These combinations would have no file to start from (they would fail): %s\n", strings.Join(gaps, ", "))
	}
}

// checkpointTree lists dir's {family}/{model}/{res}/best_model.pt regular
// files as (family, model, res) triples.
func checkpointTree(dir string) ([][3]string, error) {
	var out [][3]string
	families, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, fam := range families {
		models, _ := os.ReadDir(filepath.Join(dir, fam.Name()))
		for _, m := range models {
			resolutions, _ := os.ReadDir(filepath.Join(dir, fam.Name(), m.Name()))
			for _, r := range resolutions {
				st, err := os.Stat(filepath.Join(dir, fam.Name(), m.Name(), r.Name(), "best_model.pt"))
				if err == nil && st.Mode().IsRegular() {
					out = append(out, [3]string{fam.Name(), m.Name(), r.Name()})
				}
			}
		}
	}
	return out, nil
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
