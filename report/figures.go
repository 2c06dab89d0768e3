package report

import (
	"fmt"
	"image/color"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// models returns model names in row order and, per model, its rows sorted
// by resolution.
func (r *Report) byModel() ([]string, map[string][]Row) {
	var names []string
	rows := map[string][]Row{}
	for _, x := range r.Rows {
		if _, ok := rows[x.Model]; !ok {
			names = append(names, x.Model)
		}
		rows[x.Model] = append(rows[x.Model], x)
	}
	for _, n := range names {
		sort.Slice(rows[n], func(i, j int) bool { return rows[n][i].Resolution < rows[n][j].Resolution })
	}
	return names, rows
}

func (r *Report) resolutions() []int {
	set := map[int]bool{}
	for _, x := range r.Rows {
		set[x.Resolution] = true
	}
	var out []int
	for v := range set {
		out = append(out, v)
	}
	sort.Ints(out)
	return out
}

// resolutionTicks labels the resolutions that exist, on a log axis.
type resolutionTicks []int

func (t resolutionTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for _, r := range t {
		out = append(out, plot.Tick{Value: float64(r), Label: fmt.Sprint(r)})
	}
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// seriesPlot draws one line with markers per model of value(row), skipping
// rows without a value (missing and failed combinations get no point).
func (r *Report) seriesPlot(title, ylabel string, value func(Row) *float64) (*plot.Plot, error) {
	p := newPlot(title, "input resolution (px, log scale)", ylabel)
	res := r.resolutions()
	if len(res) > 1 {
		p.X.Scale = plot.LogScale{}
	}
	p.X.Tick.Marker = resolutionTicks(res)
	names, rows := r.byModel()
	for i, name := range names {
		pts := meanByResolution(rows[name], value)
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		l.Width = vg.Points(2)
		s.Shape = plotutil.Shape(i)
		s.Radius = vg.Points(4)
		p.Add(l, s)
		p.Legend.Add(name, l, s)
	}
	if len(res) > 0 {
		lo, hi := float64(res[0]), float64(res[len(res)-1])
		p.X.Min, p.X.Max = lo/1.15, hi*1.15
	}
	return p, nil
}

// meanByResolution averages value over a model's runs at each resolution
// (its seeds), skipping runs without one.
func meanByResolution(rows []Row, value func(Row) *float64) plotter.XYs {
	sum, n := map[int]float64{}, map[int]int{}
	var order []int
	for _, x := range rows {
		if v := value(x); v != nil {
			if n[x.Resolution] == 0 {
				order = append(order, x.Resolution)
			}
			sum[x.Resolution] += *v
			n[x.Resolution]++
		}
	}
	var pts plotter.XYs
	for _, r := range order {
		pts = append(pts, plotter.XY{X: float64(r), Y: sum[r] / float64(n[r])})
	}
	return pts
}

// save draws a grid of plots into PNG (and SVG when svg is set).
func save(plots [][]*plot.Plot, w, h vg.Length, base string, svg bool) ([]string, error) {
	rows, cols := len(plots), len(plots[0])
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	var files []string
	render := func(c vg.CanvasSizer) {
		dc := draw.New(c)
		canvases := plot.Align(plots, tiles, dc)
		for i := range plots {
			for j := range plots[i] {
				if plots[i][j] != nil {
					plots[i][j].Draw(canvases[i][j])
				}
			}
		}
	}
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))
	render(img)
	f, err := os.Create(base + ".png")
	if err != nil {
		return nil, err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	files = append(files, base+".png")
	if svg {
		c := vgsvg.New(w, h)
		render(c)
		f, err := os.Create(base + ".svg")
		if err != nil {
			return files, err
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return files, err
		}
		f.Close()
		files = append(files, base+".svg")
	}
	return files, nil
}

// FigureSize of the main figure (two panels), in pixels at 96 dpi.
const FigureWidthPx, FigureHeightPx = 1440, 540

func px(n int) vg.Length { return vg.Length(n) * vg.Inch / 96 }

func (r *Report) figures(dir string) ([]string, error) {
	acc, err := r.accuracyPlot()
	if err != nil {
		return nil, err
	}
	speed, err := r.seriesPlot("Training throughput vs resolution", "images / s (training)", func(x Row) *float64 { return x.ImagesPerSec })
	if err != nil {
		return nil, err
	}
	files, err := save([][]*plot.Plot{{acc, speed}}, px(FigureWidthPx), px(FigureHeightPx), filepath.Join(dir, "resomap"), true)
	if err != nil {
		return files, err
	}
	hm, err := r.heatMap()
	if err != nil {
		return files, err
	}
	names, _ := r.byModel()
	more, err := save([][]*plot.Plot{{hm}}, px(200+120*len(r.resolutions())), px(160+60*len(names)), filepath.Join(dir, "heatmap"), true)
	files = append(files, more...)
	if err != nil {
		return files, err
	}
	pf, err := r.paretoFigure(dir)
	files = append(files, pf...)
	if err != nil {
		return files, err
	}
	tm, err := r.testMapFigure(dir)
	files = append(files, tm...)
	if err != nil {
		return files, err
	}
	lc, err := r.learningCurves(dir)
	return append(files, lc...), err
}

// grid is models x resolutions of best val accuracy (NaN where none).
type grid struct {
	res    []int
	models []string
	z      [][]float64 // [model][res]
}

func (g grid) Dims() (c, r int)   { return len(g.res), len(g.models) }
func (g grid) Z(c, r int) float64 { return g.z[r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

type indexTicks []string

func (t indexTicks) Ticks(min, max float64) []plot.Tick {
	out := make([]plot.Tick, len(t))
	for i, l := range t {
		out[i] = plot.Tick{Value: float64(i), Label: l}
	}
	return out
}

func (r *Report) heatMap() (*plot.Plot, error) {
	g, labels, lo, hi := r.heatCells()
	p := plot.New()
	p.Title.Text = "Best validation accuracy (models × resolutions)"
	p.X.Label.Text = "input resolution (px)"
	p.X.Tick.Marker = indexTicks(intLabels(g.res))
	p.Y.Tick.Marker = indexTicks(g.models)
	pal := moreland.SmoothBlueRed()
	if lo > hi { // nothing trained yet
		lo, hi = 0, 1
	}
	if lo == hi {
		lo, hi = lo-0.01, hi+0.01
	}
	pal.SetMin(lo)
	pal.SetMax(hi)
	h := plotter.NewHeatMap(g, pal.Palette(64))
	h.Min, h.Max = lo, hi
	h.NaN = color.Gray{Y: 220}
	p.Add(h)
	l, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
	}
	p.Add(l)
	p.X.Min, p.X.Max = -0.5, float64(len(g.res))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(g.models))-0.5
	return p, nil
}

// heatCells are the heat map's cells (a cell per model and resolution:
// the mean over seeds, or the row's own accuracy, NaN where none), each
// cell's label, and the range of the values.
func (r *Report) heatCells() (g grid, labels plotter.XYLabels, lo, hi float64) {
	names, rows := r.byModel()
	g = grid{res: r.resolutions(), models: names}
	lo, hi = math.Inf(1), math.Inf(-1)
	cells := r.cellIntervals()
	for mi, name := range names {
		line := make([]float64, len(g.res))
		for ci := range line {
			line[ci] = math.NaN()
		}
		done := map[int]bool{}
		for _, x := range rows[name] {
			if done[x.Resolution] { // one cell per resolution: the mean over seeds
				continue
			}
			done[x.Resolution] = true
			ci := sort.SearchInts(g.res, x.Resolution)
			text := x.Status
			if v, ok := cells[cellKey{name, x.Resolution}]; ok {
				line[ci] = v.Mean
				lo, hi = math.Min(lo, v.Mean), math.Max(hi, v.Mean)
				text = fmt.Sprintf("%.3f", v.Mean)
			} else if x.BestValAcc != nil {
				line[ci] = *x.BestValAcc
				lo, hi = math.Min(lo, *x.BestValAcc), math.Max(hi, *x.BestValAcc)
				text = fmt.Sprintf("%.3f", *x.BestValAcc)
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(ci), Y: float64(mi)})
			labels.Labels = append(labels.Labels, text)
		}
		g.z = append(g.z, line)
	}
	return g, labels, lo, hi
}

func intLabels(v []int) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = fmt.Sprint(x)
	}
	return out
}

// learningCurves writes one small-multiples figure per model: a column per
// resolution, losses on top, validation accuracy below. A resolution
// trained with several seeds shows their mean per epoch: a sweep of
// thousands of trainings keeps a figure a column per resolution (each
// training's figures are in results.csv and results.json).
func (r *Report) learningCurves(dir string) ([]string, error) {
	names, rows := r.byModel()
	var files []string
	for _, name := range names {
		var top, bottom []*plot.Plot
		for _, cell := range byResolution(rows[name]) {
			loss := newPlot(fmt.Sprintf("%s@%d (%s)", name, cell[0].Resolution, cellStatus(cell)), "epoch", "loss")
			acc := newPlot("", "epoch", "val accuracy")
			acc.Legend.Top = false // accuracy rises: its last points are top right
			tl, vl, va := meanCurves(cell)
			if len(va) > 0 {
				if err := plotutil.AddLinePoints(loss, "train", tl, "val", vl); err != nil {
					return files, err
				}
				if err := plotutil.AddLinePoints(acc, "val", va); err != nil {
					return files, err
				}
			} else {
				loss.Title.Text += ": no epochs"
			}
			top, bottom = append(top, loss), append(bottom, acc)
		}
		// One y-axis per row of panels, so curves at different resolutions
		// compare by eye.
		shareY(top)
		shareY(bottom)
		out, err := save([][]*plot.Plot{top, bottom}, px(80+300*len(top)), px(620), filepath.Join(dir, "learning_curves_"+strings.ReplaceAll(name, ":", "_")), false)
		files = append(files, out...)
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

// byResolution splits rows sorted by resolution into one group per
// resolution.
func byResolution(rows []Row) [][]Row {
	var cells [][]Row
	for k, x := range rows {
		if k == 0 || x.Resolution != rows[k-1].Resolution {
			cells = append(cells, nil)
		}
		cells[len(cells)-1] = append(cells[len(cells)-1], x)
	}
	return cells
}

// cellStatus is a resolution's status in a panel title: its training's,
// or how many seeds its mean is over.
func cellStatus(cell []Row) string {
	if len(cell) == 1 {
		return cell[0].Status
	}
	with := 0
	for _, x := range cell {
		if x.outcome != nil && len(x.outcome.Metrics) > 0 {
			with++
		}
	}
	if with == len(cell) {
		return fmt.Sprintf("mean of %d seeds", len(cell))
	}
	return fmt.Sprintf("mean of %d of %d seeds", with, len(cell))
}

// meanCurves are the cell's training loss, validation loss and accuracy
// per epoch, each the mean over the trainings that ran that epoch.
func meanCurves(cell []Row) (trainLoss, valLoss, valAcc plotter.XYs) {
	type sums struct{ tl, vl, va, n float64 }
	byEpoch := map[int]*sums{}
	for _, x := range cell {
		if x.outcome == nil {
			continue
		}
		for _, m := range x.outcome.Metrics {
			s := byEpoch[m.Epoch]
			if s == nil {
				s = &sums{}
				byEpoch[m.Epoch] = s
			}
			s.tl, s.vl, s.va, s.n = s.tl+m.TrainLoss, s.vl+m.ValLoss, s.va+m.ValAcc, s.n+1
		}
	}
	for _, e := range slices.Sorted(maps.Keys(byEpoch)) {
		s := byEpoch[e]
		trainLoss = append(trainLoss, plotter.XY{X: float64(e), Y: s.tl / s.n})
		valLoss = append(valLoss, plotter.XY{X: float64(e), Y: s.vl / s.n})
		valAcc = append(valAcc, plotter.XY{X: float64(e), Y: s.va / s.n})
	}
	return trainLoss, valLoss, valAcc
}

// shareY gives plots the y range that holds all of them.
func shareY(plots []*plot.Plot) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range plots {
		if p.Y.Min <= p.Y.Max { // an empty plot has Min > Max (+Inf, -Inf)
			lo, hi = min(lo, p.Y.Min), max(hi, p.Y.Max)
		}
	}
	if lo > hi {
		return
	}
	for _, p := range plots {
		p.Y.Min, p.Y.Max = lo, hi
	}
}
