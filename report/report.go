// Package report turns a sweep's recorded results into the resolution map:
// figures (accuracy and throughput against resolution, learning curves, a
// heat map), results.csv/json and a README.md that embeds them. Missing,
// failed, skipped and cancelled combinations appear as such, never as zeros.
package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// ErrNoSweep: the store has nothing of that sweep.
var ErrNoSweep = errors.New("no such sweep")

// Missing marks a combination of the spec with no recorded outcome.
const Missing = "missing"

// Row is one combination. Figures that do not exist are nil (null in JSON,
// empty in CSV), not zero.
type Row struct {
	Model        string     `json:"model"`
	Family       string     `json:"family"`
	Resolution   int        `json:"resolution"`
	Seed         uint64     `json:"seed,omitempty"` // of the sweep's seeds list
	ValImages    int        `json:"val_images,omitempty"`
	Status       string     `json:"status"`
	Reason       string     `json:"reason,omitempty"`
	EpochsRun    int        `json:"epochs_run"`
	Epochs       int        `json:"epochs"`
	BestEpoch    *int       `json:"best_epoch"`
	BestValLoss  *float64   `json:"best_val_loss"`
	BestValAcc   *float64   `json:"best_val_acc"`
	FinalValAcc  *float64   `json:"final_val_acc"`
	ImagesPerSec *float64   `json:"images_per_s"`
	WallSeconds  *float64   `json:"wall_seconds"`
	Device       string     `json:"device,omitempty"`
	Keys         sweep.Keys `json:"checkpoint_keys"`
	Resumes      int        `json:"resumed"`
	OOMs         int        `json:"out_of_memory"`
	EarlyStopped bool       `json:"early_stopped"`
	Augment      string     `json:"augment,omitempty"`
	// SkippedImages did not decode and were left out (skip_bad_images).
	SkippedImages int `json:"skipped_images"`
	// PerEpoch is where an epoch's time went (nil before any epoch here).
	PerEpoch *sweep.EpochSplit `json:"seconds_per_epoch"`
	// ComputeHours of training and validation: the training's own share
	// of its worker's device; Cost at the report's price per hour (nil
	// when not priced). SharedEpochs shared the device with other
	// trainings or data cache builds. PrepareSeconds: preparing (the data
	// cache's build apart, in CacheBuildSeconds).
	ComputeHours   *float64 `json:"compute_hours"`
	Cost           *float64 `json:"cost"`
	SharedEpochs   int      `json:"shared_epochs,omitempty"`
	PrepareSeconds *float64 `json:"prepare_seconds,omitempty"`
	// CacheBuildSeconds: building cold data caches as its epochs opened
	// the training (nil when none was cold).
	CacheBuildSeconds *float64 `json:"cache_build_seconds,omitempty"`
	// NativeSide is the data's image size; Upsampled marks a resolution
	// more than sweep.MaxUpsampling times it (it measures upsampling).
	NativeSide int  `json:"native_side,omitempty"`
	Upsampled  bool `json:"upsampled"`
	// Cell is the 95% interval of best accuracy of this row's (model,
	// resolution) over its seeds (nil when none has one).
	Cell *Interval `json:"best_val_acc_interval"`
	// MLflowRun is the training's run on the tracking server (when
	// tracked; for a training skipped because MLflow had it, that run).
	MLflowRun string `json:"mlflow_run,omitempty"`
	MLflowURL string `json:"mlflow_url,omitempty"`
	// StartedFrom: the pretrained weights it was fine-tuned from ("": from
	// scratch).
	StartedFrom string `json:"started_from,omitempty"`
	// ConfigHash names the training; FiguresFrom says where a skipped
	// row's figures come from: the result of the run that trained it
	// (every figure is that run's, compute hours and time split included).
	ConfigHash  string `json:"config_hash,omitempty"`
	FiguresFrom string `json:"figures_from,omitempty"`
	// Numerics are the fingerprints of the arithmetic its steps ran under
	// (libtorch, device, BLAS kernel, ISA, threads); more than one: it
	// moved between unlike workers (MixedNumerics).
	Numerics []string `json:"numerics,omitempty"`
	outcome  *sweep.Outcome
}

// Report is a sweep's results.
type Report struct {
	Sweep string
	Spec  *sweep.Spec
	Rows  []Row
	// PricePerHour prices compute hours (0: unpriced); Build takes the
	// spec's cost.per_hour.
	PricePerHour float64
	// Links make index.html link each run (zero: no Temporal links).
	Links Links
}

// Price sets the price of a compute hour and each row's cost.
func (r *Report) Price(perHour float64) {
	r.PricePerHour = perHour
	for i := range r.Rows {
		r.Rows[i].Cost = nil
		if h := r.Rows[i].ComputeHours; h != nil && perHour > 0 {
			r.Rows[i].Cost = ptr(*h * perHour)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// WriteFolder builds sweep spec's report from the store, priced at its
// cost per hour, into dir (what log_report puts on the sweep's MLflow run),
// and names its files.
func WriteFolder(ctx context.Context, st store.Store, spec sweep.Spec, dir string) ([]string, error) {
	r, err := Build(ctx, st, spec.Name)
	if err != nil {
		return nil, err
	}
	if spec.Cost.PerHour > 0 {
		r.Price(spec.Cost.PerHour)
	}
	return r.Write(dir)
}

// Build reads a sweep's spec and outcomes from the store.
func Build(ctx context.Context, st store.Store, name string) (*Report, error) {
	idx := results.Index{Store: st}
	outcomes, err := idx.Outcomes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read outcomes of %s: %w", name, err)
	}
	r := &Report{Sweep: name}
	if b, err := store.ReadAll(ctx, st, results.SpecKey(name)); err == nil {
		var s sweep.Spec
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("spec of %s: %w", name, err)
		}
		r.Spec = &s
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if r.Spec == nil && len(outcomes) == 0 {
		return nil, fmt.Errorf("%w: %q has no results in %s (sweeps are named by their spec's name, e.g. default)", ErrNoSweep, name, st.URL())
	}
	if err := r.addRows(ctx, idx, outcomes); err != nil {
		return nil, err
	}
	if r.Spec != nil {
		r.Price(r.Spec.Cost.PerHour)
	}
	r.fillIntervals()
	return r, nil
}

// addRows makes the report's rows: the spec's combinations in its order,
// then outcomes of combinations since removed from it; each distinct
// training (config hash) once, with the figures of the run that produced
// it.
func (r *Report) addRows(ctx context.Context, idx results.Index, outcomes map[string]sweep.Outcome) error {
	var combos []sweep.Combination
	if r.Spec != nil {
		combos = r.Spec.Combinations()
	}
	used := map[string]bool{}
	trainings := map[string]bool{} // config hashes with a row
	add := func(o sweep.Outcome) error {
		if o.ConfigHash != "" && trainings[o.ConfigHash] {
			return nil // the same training under another name: counted once
		}
		row, err := producedRow(ctx, idx, o)
		if err != nil {
			return err
		}
		if o.ConfigHash != "" {
			trainings[o.ConfigHash] = true
		}
		r.Rows = append(r.Rows, row)
		return nil
	}
	for _, c := range combos {
		id, ok := r.outcomeID(outcomes, c)
		for _, alias := range r.aliases(c) {
			used[alias] = true // the same training's outcome under its other name: not a row of its own
		}
		if !ok {
			info, _ := sweep.LookupModel(c.Model)
			r.Rows = append(r.Rows, Row{Model: c.Model, Family: info.Family, Resolution: c.Resolution, Seed: c.Seed, Status: Missing,
				Reason: "no result recorded (not started, or the sweep is still running)", Epochs: r.Spec.Epochs})
			continue
		}
		used[id] = true
		o := outcomes[id]
		o.Seed = c.Seed // the spec's name of the seed it trained with
		if err := add(o); err != nil {
			return err
		}
	}
	var rest []string
	for id := range outcomes {
		if !used[id] {
			rest = append(rest, id)
		}
	}
	sortIDs(rest, outcomes)
	for _, id := range rest {
		if err := add(outcomes[id]); err != nil {
			return err
		}
	}
	return nil
}

// outcomeID finds the outcome of combination c. A sweep without seeds
// names its trainings without one (model@res); grown by seeds, the same
// training is model@res-seedN with N the spec's seed: either name is it.
// Where both have an outcome (an earlier run's under the old name), the
// one that completed or was skipped is the training's; between two of a
// kind, the one under c's own name, the later.
func (r *Report) outcomeID(outcomes map[string]sweep.Outcome, c sweep.Combination) (string, bool) {
	best, found := "", false
	for _, id := range append([]string{c.ID()}, r.aliases(c)...) {
		o, ok := outcomes[id]
		if !ok {
			continue
		}
		if !found || o.Status.HasResult() && !outcomes[best].Status.HasResult() {
			best, found = id, true
		}
	}
	return best, found
}

// aliases are c's other names: model@res-seedN for model@res with N the
// spec's seed, and the other way round.
func (r *Report) aliases(c sweep.Combination) []string {
	if r.Spec == nil {
		return nil
	}
	if alias, ok := r.Spec.Alias(c); ok {
		return []string{alias.ID()}
	}
	return nil
}

// producedRow is o's row with the figures of the run that produced it: a
// skipped training's come from its result record (the one source of
// truth), not from what the skipping workflow copied of them.
func producedRow(ctx context.Context, idx results.Index, o sweep.Outcome) (Row, error) {
	if o.Status != sweep.Skipped || o.ConfigHash == "" {
		row := rowOf(o)
		return row, nil
	}
	rec, by, err := idx.Lookup(ctx, o.ConfigHash)
	if err != nil {
		return Row{}, err
	}
	if rec == nil {
		return rowOf(o), nil // skipped for a run MLflow showed FINISHED: its figures are there
	}
	fig := *rec
	fig.Model, fig.Family, fig.Resolution, fig.Seed = o.Model, o.Family, o.Resolution, o.Seed
	// The sizes the skipping sweep evaluated the same best model at, where
	// the record has none (a sweep grown by resolutions tests at more).
	fig.TestResults = mergeTestResults(rec.TestResults, o.TestResults)
	if fig.TrackingRun == "" {
		fig.TrackingRun, fig.TrackingURL = o.TrackingRun, o.TrackingURL
	}
	row := rowOf(fig)
	row.Status, row.Reason = string(sweep.Skipped), o.Reason
	row.FiguresFrom = fmt.Sprintf("sweep %s (%s)", by, results.ResultKey(o.ConfigHash))
	return row, nil
}

// mergeTestResults is have, then the sizes of more it lacks, by size.
func mergeTestResults(have, more []sweep.TestResult) []sweep.TestResult {
	out := slices.Clone(have)
	for _, t := range more {
		if !slices.ContainsFunc(out, func(h sweep.TestResult) bool { return h.Resolution == t.Resolution }) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resolution < out[j].Resolution })
	return out
}

// fillIntervals gives each row its cell's interval.
func (r *Report) fillIntervals() {
	iv := r.cellIntervals()
	for i := range r.Rows {
		r.Rows[i].Cell = nil
		if v, ok := iv[cellKey{r.Rows[i].Model, r.Rows[i].Resolution}]; ok {
			r.Rows[i].Cell = &v
		}
	}
}

func sortIDs(ids []string, o map[string]sweep.Outcome) {
	sort.Slice(ids, func(i, j int) bool {
		a, b := o[ids[i]], o[ids[j]]
		return a.Model < b.Model || a.Model == b.Model && a.Resolution < b.Resolution
	})
}

func rowOf(o sweep.Outcome) Row {
	row := Row{Model: o.Model, Family: o.Family, Resolution: o.Resolution, Seed: o.Seed, ValImages: o.ValImages, Status: string(o.Status), Reason: o.Reason,
		EpochsRun: len(o.Metrics), Epochs: o.Epochs, Device: o.Device, Keys: o.Keys, Resumes: len(o.Resumes), OOMs: o.OOMs,
		EarlyStopped: o.EarlyStopped, Augment: o.Augment, SkippedImages: o.SkippedImages, MLflowRun: o.TrackingRun, MLflowURL: o.TrackingURL, StartedFrom: o.StartedFrom,
		ConfigHash: o.ConfigHash, Numerics: o.Numerics, outcome: &o}
	if sp, ok := o.EpochSplit(); ok && o.Status != sweep.Skipped {
		row.PerEpoch = &sp
	}
	if h := o.ComputeHours(); h > 0 {
		row.ComputeHours = ptr(h)
	}
	if o.Status != sweep.Skipped {
		row.SharedEpochs = o.SharedEpochs
		if o.PrepareSeconds > 0 {
			row.PrepareSeconds = ptr(o.PrepareSeconds)
		}
		if o.CacheBuildSeconds > 0 {
			row.CacheBuildSeconds = ptr(o.CacheBuildSeconds)
		}
	}
	row.NativeSide, row.Upsampled = o.NativeSide, sweep.Upsampled(o.Resolution, o.NativeSide)
	if o.BestEpoch > 0 {
		row.BestEpoch, row.BestValLoss, row.BestValAcc = ptr(o.BestEpoch), ptr(o.BestValLoss), ptr(o.BestValAcc)
	}
	if n := len(o.Metrics); n > 0 {
		row.FinalValAcc = ptr(o.Metrics[n-1].ValAcc)
		row.ImagesPerSec = ptr(o.DeviceImagesPerSec())
	}
	// Wall time is the time the combination's epochs took on a worker
	// (training, validation, checkpoints), not time spent queued for one.
	if o.EpochSeconds > 0 && o.Status != sweep.Skipped {
		row.WallSeconds = ptr(o.EpochSeconds)
	}
	return row
}

// Write writes every file of the report into dir and returns their paths.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	add := func(name string, write func(io.Writer) error) error {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		files = append(files, p)
		return f.Close()
	}
	if err := add("results.json", r.writeJSON); err != nil {
		return files, err
	}
	if err := add("results.csv", r.writeCSV); err != nil {
		return files, err
	}
	if r.hasTestResults() {
		if err := add("test_resolutions.csv", r.writeTestCSV); err != nil {
			return files, err
		}
	}
	figs, err := r.figures(dir)
	files = append(files, figs...)
	if err != nil {
		return files, err
	}
	if err := add("README.md", func(w io.Writer) error { return r.writeMarkdown(w, figs) }); err != nil {
		return files, err
	}
	if err := add("index.html", func(w io.Writer) error { return r.WriteHTML(figs, r.Links, w) }); err != nil {
		return files, err
	}
	return files, nil
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Sweep string      `json:"sweep"`
		Spec  *sweep.Spec `json:"spec"`
		Rows  []Row       `json:"results"`
	}{r.Sweep, r.Spec, r.Rows})
}

// CSVHeader is the first line of results.csv.
var CSVHeader = []string{"model", "family", "resolution", "status", "reason", "epochs_run", "epochs", "best_epoch",
	"best_val_loss", "best_val_acc", "final_val_acc", "images_per_s", "wall_seconds", "device",
	"best_checkpoint", "final_checkpoint", "latest_checkpoint", "resumed", "out_of_memory", "early_stopped",
	"augment", "skipped_images", "train_s_per_epoch", "val_s_per_epoch", "checkpoint_wait_s_per_epoch",
	"restore_s_per_epoch", "other_s_per_epoch", "compute_hours", "cost", "native_side", "upsampled",
	"seed", "seeds", "best_val_acc_mean", "best_val_acc_std", "best_val_acc_ci95_low", "best_val_acc_ci95_high",
	"waiting_s_per_epoch", "prepare_s", "shared_epochs", "cache_build_s", "config_hash", "figures_from", "numerics"}

func fmtF(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func fmtI(v *int) string {
	if v == nil {
		return ""
	}
	return strconv.Itoa(*v)
}

func (r *Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, x := range r.Rows {
		cells := []string{x.Model, x.Family, strconv.Itoa(x.Resolution), x.Status, x.Reason, strconv.Itoa(x.EpochsRun),
			strconv.Itoa(x.Epochs), fmtI(x.BestEpoch), fmtF(x.BestValLoss), fmtF(x.BestValAcc), fmtF(x.FinalValAcc),
			fmtF(x.ImagesPerSec), fmtF(x.WallSeconds), x.Device, x.Keys.Best, x.Keys.Final, x.Keys.Latest,
			strconv.Itoa(x.Resumes), strconv.Itoa(x.OOMs), strconv.FormatBool(x.EarlyStopped),
			x.Augment, strconv.Itoa(x.SkippedImages)}
		cells = append(cells, splitCells(x.PerEpoch)...)
		cells = append(cells, fmtF(x.ComputeHours), fmtF(x.Cost), strconv.Itoa(x.NativeSide), strconv.FormatBool(x.Upsampled),
			strconv.FormatUint(x.Seed, 10))
		cells = append(cells, intervalCells(x.Cell)...)
		waiting := ""
		if x.PerEpoch != nil {
			waiting = strconv.FormatFloat(x.PerEpoch.Waiting, 'f', 3, 64)
		}
		cw.Write(append(cells, waiting, fmtF(x.PrepareSeconds), strconv.Itoa(x.SharedEpochs), fmtF(x.CacheBuildSeconds), x.ConfigHash, x.FiguresFrom, strings.Join(x.Numerics, "; ")))
	}
	cw.Flush()
	return cw.Error()
}

// intervalCells are a row's cell columns: runs, mean, std, 95% interval.
func intervalCells(v *Interval) []string {
	if v == nil {
		return make([]string, 5)
	}
	out := []string{strconv.Itoa(v.N)}
	for _, f := range []float64{v.Mean, v.Std, v.Low, v.High} {
		out = append(out, strconv.FormatFloat(f, 'g', -1, 64))
	}
	return out
}

// splitCells are a row's per-epoch time columns (empty when unknown).
func splitCells(s *sweep.EpochSplit) []string {
	if s == nil {
		return make([]string, 5)
	}
	out := []string{}
	for _, v := range []float64{s.Train, s.Validation, s.CheckpointWait, s.Restore, s.Other} {
		out = append(out, strconv.FormatFloat(v, 'f', 3, 64))
	}
	return out
}

func cell(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}

// Table writes the results as a Markdown table.
func (r *Report) Table(w io.Writer) {
	fmt.Fprintln(w, "| model | resolution | status | epochs | best val acc | best epoch | final val acc | images/s | wall (s) |")
	fmt.Fprintln(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range r.Rows {
		be := "—"
		if x.BestEpoch != nil {
			be = strconv.Itoa(*x.BestEpoch)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d/%d | %s | %s | %s | %s | %s |\n", x.Model, x.Resolution, x.Status, x.EpochsRun, x.Epochs,
			cell(x.BestValAcc, "%.4f"), be, cell(x.FinalValAcc, "%.4f"), cell(x.ImagesPerSec, "%.0f"), cell(x.WallSeconds, "%.0f"))
	}
}

func (r *Report) writeMarkdown(w io.Writer, figs []string) error {
	fmt.Fprintf(w, "# ResoMap report: sweep %s\n\n", r.Sweep)
	fmt.Fprintln(w, "How validation accuracy and training cost change with input resolution, per model.")
	fmt.Fprintln(w)
	for _, f := range figs {
		if strings.HasSuffix(f, ".png") {
			fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(f), ".png"), filepath.Base(f))
		}
	}
	r.writeReading(w)
	fmt.Fprintln(w, "## Results")
	fmt.Fprintln(w)
	r.Table(w)
	fmt.Fprintln(w)
	r.writeStartedFrom(w)
	var problems []string
	for _, x := range r.Rows {
		switch sweep.Status(x.Status) {
		case sweep.Completed:
		case sweep.Skipped:
			problems = append(problems, fmt.Sprintf("- %s skipped: %s", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.Reason))
		default:
			problems = append(problems, fmt.Sprintf("- %s **%s**: %s", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.Status, x.Reason))
		}
	}
	r.writeTestReading(w)
	if front := r.paretoLines(); len(front) > 0 {
		fmt.Fprintln(w, "## Accuracy for the compute: the Pareto front")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "No other combination is both at least as accurate and at most as costly as these (`pareto.png`):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(front, "\n"))
		fmt.Fprintln(w)
	}
	r.writeTimeTable(w)
	r.writeNumerics(w)
	r.writeDataNotes(w)
	if len(problems) > 0 {
		fmt.Fprintln(w, "## Not completed in this sweep")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(problems, "\n"))
		fmt.Fprintln(w)
	}
	if r.Spec != nil {
		b, _ := json.MarshalIndent(r.Spec, "", "  ")
		fmt.Fprintf(w, "## Sweep spec\n\n```json\n%s\n```\n", b)
	}
	fmt.Fprintln(w, "\nFiles: `results.csv`, `results.json`; figures as PNG and SVG.")
	return nil
}

// writeNumerics says which arithmetic trained the results, and flags a
// training whose epochs ran under more than one (floating point differs
// between libtorch versions, devices, BLAS kernels and thread counts:
// another kernel gave other accuracies in every cell of one sweep).
func (r *Report) writeNumerics(w io.Writer) {
	var all, mixed []string
	unknown := 0
	for _, x := range r.Rows {
		all = sweep.UnionNumerics(all, x.Numerics)
		if len(x.Numerics) == 0 && x.EpochsRun > 0 {
			unknown++
		}
		if len(x.Numerics) > 1 {
			mixed = append(mixed, fmt.Sprintf("- **%s** ran under %d: %s", sweep.TrainingID(x.Model, x.Resolution, x.Seed),
				len(x.Numerics), strings.Join(x.Numerics, "; then ")))
		}
	}
	if len(all) == 0 {
		return
	}
	fmt.Fprintln(w, "## Numerics")
	fmt.Fprintln(w)
	if unknown > 0 {
		fmt.Fprintf(w, "%d trainings were recorded before numerics were: how they were computed is not known.\n\n", unknown)
	}
	if len(all) == 1 {
		fmt.Fprintf(w, "Every epoch recorded with its numerics ran under %s.\n\n", all[0])
		return
	}
	fmt.Fprintf(w, "Epochs ran under %d arithmetics: %s. Results of unlike arithmetics differ by floating point (compare them knowing that).\n\n", len(all), strings.Join(all, "; "))
	if len(mixed) > 0 {
		fmt.Fprintln(w, "Trainings that moved between unlike workers (their figures are not one arithmetic's):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(mixed, "\n"))
		fmt.Fprintln(w)
	}
}

// writeDataNotes says which recipe trained the results and which
// combinations left out images that did not decode.
func (r *Report) writeDataNotes(w io.Writer) {
	var recipes []string
	var skipped []string
	for _, x := range r.Rows {
		if x.Augment != "" && !slices.Contains(recipes, x.Augment) {
			recipes = append(recipes, x.Augment)
		}
		if x.SkippedImages > 0 {
			skipped = append(skipped, fmt.Sprintf("%s: %d", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.SkippedImages))
		}
	}
	if len(recipes) > 0 {
		fmt.Fprintf(w, "Data recipe: %s.\n\n", strings.Join(recipes, ", "))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "Images left out because they did not decode (skip_bad_images): %s.\n\n", strings.Join(skipped, "; "))
	}
	var up []string
	for _, x := range r.Rows {
		if x.Upsampled {
			up = append(up, fmt.Sprintf("%s (data %d px)", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.NativeSide))
		}
	}
	if len(up) > 0 {
		fmt.Fprintf(w, "**Upsampled**: these resolutions are more than %gx the data's native image size, so they measure upsampling, not resolution (allow_upsampling): %s.\n\n",
			sweep.MaxUpsampling, strings.Join(up, "; "))
	}
}

// writeTimeTable says where each combination's epochs spent their time.
func (r *Report) writeTimeTable(w io.Writer) {
	var lines, shared, carried, contended []string
	for _, x := range r.Rows {
		s := x.PerEpoch
		if s == nil {
			continue
		}
		if o := x.outcome; o != nil && o.ContendedEpochs > 0 {
			contended = append(contended, fmt.Sprintf("%s (%d of %d epochs, others used up to %.0f%% of the host's CPUs)",
				sweep.TrainingID(x.Model, x.Resolution, x.Seed), o.ContendedEpochs, x.EpochsRun, 100*o.HostOthers))
		}
		if o := x.outcome; o != nil && o.CarriedEpochs > 0 {
			carried = append(carried, fmt.Sprintf("%s (%d of %d epochs)", sweep.TrainingID(x.Model, x.Resolution, x.Seed), o.CarriedEpochs, x.EpochsRun))
		}
		lines = append(lines, fmt.Sprintf("| %s | %d | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f (%.1f%%) | %.2f | %s | %s |", x.Model, x.Resolution,
			s.Train, s.Validation, s.CheckpointWait, s.Restore, s.Other, s.Fixed(), 100*s.Outside(), s.Waiting,
			cell(x.PrepareSeconds, "%.1f"), cell(x.CacheBuildSeconds, "%.1f")))
		if x.SharedEpochs > 0 {
			shared = append(shared, fmt.Sprintf("%s (%d of %d epochs)", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.SharedEpochs, x.EpochsRun))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "## Time per epoch (seconds)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Fixed cost: waiting for checkpoints to be stored, restoring (checkpoint, data, model) and the rest (scheduling, bookkeeping). Waiting: scheduled but not running (queued for a worker or a training slot, paused). Preparing and building a cold data cache (once per training, or once per worker it moved to) are apart.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| model | resolution | training | validation | checkpoint wait | restore | other | fixed cost | waiting | preparing (once) | data cache build (once) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	fmt.Fprintln(w)
	if len(shared) > 0 {
		fmt.Fprintf(w, "Shared a device with other trainings or data cache builds: %s. Their throughput and compute hours are their own share of the device.\n\n", strings.Join(shared, ", "))
	}
	if len(contended) > 0 {
		fmt.Fprintf(w, "**Measured on a shared host**: %s. Other processes on the same machine (other workers' containers, a neighbour VM) used its CPUs meanwhile: their time and throughput are not what the host alone gives; compare them with care.\n\n", strings.Join(contended, ", "))
	}
	if len(carried) > 0 {
		fmt.Fprintf(w, "Resumed from the checkpoints of an earlier run: %s. Those epochs' device time and their training and validation time (shown as training) come from their figures, so compute hours are the whole training's; their fixed cost is not known (counted as none).\n\n", strings.Join(carried, ", "))
	}
}

// writeReading says, per model, which resolution is best and which others
// are within noise of it (their 95% intervals overlap), and how to read the
// intervals.
func (r *Report) writeReading(w io.Writer) {
	models, best, near := r.withinNoise()
	if len(models) == 0 {
		return
	}
	iv := r.cellIntervals()
	fmt.Fprintln(w, "## Reading the map")
	fmt.Fprintln(w)
	for _, m := range models {
		b := iv[cellKey{m, best[m]}]
		line := fmt.Sprintf("- **%s**: best at %d px, %.4f (95%% interval %.4f-%.4f, %s)", m, best[m], b.Mean, b.Low, b.High, describeInterval(b))
		if len(near[m]) > 0 {
			line += fmt.Sprintf("; within noise of it: %s px", joinInts(near[m]))
		} else {
			line += "; no other resolution is within noise of it"
		}
		fmt.Fprintln(w, line+".")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Intervals: over seeds, Student's t on the mean of the runs' best validation accuracies; for a single run, the Wilson interval of its accuracy on the validation images (seed-to-seed spread unknown: repeat with `seeds: [1, 2, 3]`). Two resolutions whose intervals overlap are not shown apart by this sweep.")
	fmt.Fprintln(w)
}

func describeInterval(v Interval) string {
	if v.Method == "t" {
		return fmt.Sprintf("%d seeds, std %.4f", v.N, v.Std)
	}
	return "one run, Wilson"
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// writeStartedFrom says what each run started from: from scratch, or the
// pretrained weights it was fine-tuned from.
func (r *Report) writeStartedFrom(w io.Writer) {
	var lines []string
	for _, x := range r.Rows {
		if x.StartedFrom != "" {
			lines = append(lines, fmt.Sprintf("- %s: fine-tuned from %s", sweep.TrainingID(x.Model, x.Resolution, x.Seed), x.StartedFrom))
		}
	}
	if len(lines) == 0 {
		fmt.Fprint(w, "Every run started from scratch (random initialisation).\n\n")
		return
	}
	fmt.Fprintf(w, "## Started from\n\n%s\n\nThe others started from scratch.\n\n", strings.Join(lines, "\n"))
}
