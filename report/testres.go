package report

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
)

// TestCSVHeader is the first line of test_resolutions.csv.
var TestCSVHeader = []string{"model", "train_resolution", "test_resolution", "seed", "val_acc", "val_loss", "skipped"}

// writeTestCSV writes one row per (model, train resolution, test
// resolution, seed) evaluated.
func (r *Report) writeTestCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(TestCSVHeader)
	for _, x := range r.Rows {
		if x.outcome == nil {
			continue
		}
		for _, t := range x.outcome.TestResults {
			acc, loss := "", ""
			if t.Skipped == "" {
				acc, loss = strconv.FormatFloat(t.ValAcc, 'g', -1, 64), strconv.FormatFloat(t.ValLoss, 'g', -1, 64)
			}
			cw.Write([]string{x.Model, strconv.Itoa(x.Resolution), strconv.Itoa(t.Resolution), strconv.FormatUint(x.Seed, 10), acc, loss, t.Skipped})
		}
	}
	cw.Flush()
	return cw.Error()
}

// hasTestResults reports whether any training was evaluated at test
// resolutions.
func (r *Report) hasTestResults() bool {
	for _, x := range r.Rows {
		if x.outcome != nil && len(x.outcome.TestResults) > 0 {
			return true
		}
	}
	return false
}

// matrix is a rows x cols heat map of values (NaN where none).
type matrix struct{ z [][]float64 }

func (m matrix) Dims() (c, r int)   { return len(m.z[0]), len(m.z) }
func (m matrix) Z(c, r int) float64 { return m.z[r][c] }
func (m matrix) X(c int) float64    { return float64(c) }
func (m matrix) Y(r int) float64    { return float64(r) }

// testMatrix is one model's mean accuracy over seeds by train resolution
// (rows) and test resolution (columns).
func (r *Report) testMatrix(model string) (trains, tests []int, z [][]float64) {
	sum, n := map[[2]int]float64{}, map[[2]int]int{}
	tr, te := map[int]bool{}, map[int]bool{}
	for _, x := range r.Rows {
		if x.Model != model || x.outcome == nil {
			continue
		}
		for _, t := range x.outcome.TestResults {
			if t.Skipped == "" {
				k := [2]int{x.Resolution, t.Resolution}
				sum[k] += t.ValAcc
				n[k]++
				tr[x.Resolution], te[t.Resolution] = true, true
			}
		}
	}
	trains, tests = sortedKeys(tr), sortedKeys(te)
	for _, a := range trains {
		row := make([]float64, len(tests))
		for j, b := range tests {
			row[j] = math.NaN()
			if k := [2]int{a, b}; n[k] > 0 {
				row[j] = sum[k] / float64(n[k])
			}
		}
		z = append(z, row)
	}
	return trains, tests, z
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// testMapPlot is one model's train x test resolution heat map; each row's
// best test resolution is marked with a star.
func (r *Report) testMapPlot(model string) (*plot.Plot, error) {
	trains, tests, z := r.testMatrix(model)
	p := plot.New()
	p.Title.Text = model + ": accuracy by train and test resolution (* best test size per row)"
	p.X.Label.Text, p.Y.Label.Text = "test resolution (px)", "train resolution (px)"
	p.X.Tick.Marker, p.Y.Tick.Marker = indexTicks(intLabels(tests)), indexTicks(intLabels(trains))
	lo, hi := math.Inf(1), math.Inf(-1)
	var labels plotter.XYLabels
	for i, row := range z {
		best := -1
		for j, v := range row {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				if best < 0 || v > row[best] {
					best = j
				}
			}
		}
		for j, v := range row {
			text := "—"
			if !math.IsNaN(v) {
				text = fmt.Sprintf("%.3f", v)
			}
			if j == best {
				text += "*"
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(j), Y: float64(i)})
			labels.Labels = append(labels.Labels, text)
		}
	}
	if lo >= hi {
		lo, hi = lo-0.01, hi+0.01
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(lo)
	pal.SetMax(hi)
	h := plotter.NewHeatMap(matrix{z}, pal.Palette(64))
	h.Min, h.Max, h.NaN = lo, hi, color.Gray{Y: 220}
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
	}
	p.Add(h, l)
	p.X.Min, p.X.Max = -0.5, float64(len(tests))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(trains))-0.5
	return p, nil
}

// testMapFigure writes test_resolution_map.png/.svg: one heat map per
// model, stacked.
func (r *Report) testMapFigure(dir string) ([]string, error) {
	if !r.hasTestResults() {
		return nil, nil
	}
	names, _ := r.byModel()
	var plots [][]*plot.Plot
	maxCols, rows := 1, 0
	for _, m := range names {
		trains, tests, _ := r.testMatrix(m)
		if len(trains) == 0 {
			continue
		}
		p, err := r.testMapPlot(m)
		if err != nil {
			return nil, err
		}
		plots = append(plots, []*plot.Plot{p})
		maxCols, rows = max(maxCols, len(tests)), rows+len(trains)
	}
	if len(plots) == 0 {
		return nil, nil
	}
	return save(plots, px(260+110*maxCols), px(120*len(plots)+55*rows), filepath.Join(dir, "test_resolution_map"), true)
}

// writeTestReading says, per model and train resolution, at which test
// resolution the model is most accurate.
func (r *Report) writeTestReading(w io.Writer) {
	if !r.hasTestResults() {
		return
	}
	fmt.Fprintln(w, "## Train × test resolution")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each trained model's best checkpoint, evaluated with the validation transform at other sizes (`test_resolution_map.png`, `test_resolutions.csv`); a network is often most accurate when tested somewhat above its training size (Touvron et al., \"Fixing the train-test resolution discrepancy\").")
	fmt.Fprintln(w)
	names, _ := r.byModel()
	for _, m := range names {
		trains, tests, z := r.testMatrix(m)
		for i, tr := range trains {
			best, own := -1, -1
			for j, v := range z[i] {
				if !math.IsNaN(v) && (best < 0 || v > z[i][best]) {
					best = j
				}
				if tests[j] == tr {
					own = j
				}
			}
			line := fmt.Sprintf("- %s trained at %d px: best tested at %d px (%.4f)", m, tr, tests[best], z[i][best])
			if own >= 0 && !math.IsNaN(z[i][own]) {
				line += fmt.Sprintf("; at %d px %.4f", tr, z[i][own])
			}
			fmt.Fprintln(w, line+".")
		}
	}
	fmt.Fprintln(w)
}
