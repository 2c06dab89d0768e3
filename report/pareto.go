package report

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/resomap/resomap/sweep"
)

// ParetoFront returns, sorted by cost, the indices of the points that no
// other point beats: none costs at most as much and is at least as
// accurate, and better in one of the two.
func ParetoFront(cost, acc []float64) []int {
	idx := make([]int, len(cost))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		return cost[i] < cost[j] || cost[i] == cost[j] && acc[i] > acc[j]
	})
	var front []int
	for _, i := range idx {
		if len(front) == 0 || acc[i] > acc[front[len(front)-1]] {
			front = append(front, i)
		}
	}
	return front
}

// costed are the rows with both a best accuracy and compute hours.
func (r *Report) costed() []Row {
	var out []Row
	for _, x := range r.Rows {
		if x.BestValAcc != nil && x.ComputeHours != nil {
			out = append(out, x)
		}
	}
	return out
}

// paretoPlot draws best validation accuracy against compute hours for every
// (model, resolution), labelled, with the Pareto front.
func (r *Report) paretoPlot() (*plot.Plot, error) {
	xlabel := "compute hours (training + validation)"
	if r.PricePerHour > 0 {
		xlabel = fmt.Sprintf("compute hours (training + validation; %g per hour)", r.PricePerHour)
	}
	p := newPlot("Best validation accuracy vs compute: the Pareto front", xlabel, "top-1 accuracy")
	rows := r.costed()
	names, _ := r.byModel()
	for i, name := range names {
		var pts plotter.XYs
		var labels []string
		for _, x := range rows {
			if x.Model == name {
				pts = append(pts, plotter.XY{X: *x.ComputeHours, Y: *x.BestValAcc})
				labels = append(labels, fmt.Sprintf("%d px", x.Resolution))
			}
		}
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		s.Color, s.Shape, s.Radius = plotutil.Color(i), plotutil.Shape(i), vg.Points(4)
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
		if err != nil {
			return nil, err
		}
		for k := range l.TextStyle {
			l.TextStyle[k].XAlign, l.Offset.X = 0.1, vg.Points(5)
		}
		p.Add(s, l)
		p.Legend.Add(name, s)
	}
	if err := r.addFront(p, rows); err != nil {
		return nil, err
	}
	// Room for the labels right of the points; ticks to read both axes.
	lo, hi := p.Y.Min, p.Y.Max
	p.X.Min, p.X.Max = 0, p.X.Max*1.12
	p.Y.Min, p.Y.Max = lo-(hi-lo)*0.05, hi+(hi-lo)*0.05
	p.X.Tick.Marker, p.Y.Tick.Marker = fineTicks{}, fineTicks{}
	// Top left: a front rises from the bottom left, and nothing is cheaper
	// and better than it.
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(10), -vg.Points(5)
	return p, nil
}

// fineTicks label about ten evenly spaced values (1, 2 or 5 times a power
// of ten apart), so a value can be read to the precision the text quotes.
type fineTicks struct{}

func (fineTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/10)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 12 {
			step *= m
			break
		}
	}
	prec := max(0, int(-math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
	}
	return ticks
}

// addFront draws the front through rows as a dashed line.
func (r *Report) addFront(p *plot.Plot, rows []Row) error {
	cost, acc := make([]float64, len(rows)), make([]float64, len(rows))
	for i, x := range rows {
		cost[i], acc[i] = *x.ComputeHours, *x.BestValAcc
	}
	front := ParetoFront(cost, acc)
	if len(front) == 0 {
		return nil
	}
	var pts plotter.XYs
	for _, i := range front {
		pts = append(pts, plotter.XY{X: cost[i], Y: acc[i]})
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Width, line.Dashes = vg.Points(1.5), []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(line)
	p.Legend.Add("Pareto front", line)
	return nil
}

// paretoFigure writes pareto.png and pareto.svg (nothing when no row has
// both figures).
func (r *Report) paretoFigure(dir string) ([]string, error) {
	if len(r.costed()) == 0 {
		return nil, nil
	}
	p, err := r.paretoPlot()
	if err != nil {
		return nil, err
	}
	return save([][]*plot.Plot{{p}}, px(900), px(600), filepath.Join(dir, "pareto"), true)
}

// paretoLines names the combinations on the front, cheapest first.
func (r *Report) paretoLines() []string {
	rows := r.costed()
	cost, acc := make([]float64, len(rows)), make([]float64, len(rows))
	for i, x := range rows {
		cost[i], acc[i] = *x.ComputeHours, *x.BestValAcc
	}
	var out []string
	for _, i := range ParetoFront(cost, acc) {
		x := rows[i]
		line := fmt.Sprintf("- %s: accuracy %.4f for %.3f compute hours", sweep.TrainingID(x.Model, x.Resolution, x.Seed), *x.BestValAcc, *x.ComputeHours)
		if x.Cost != nil {
			line += fmt.Sprintf(" (cost %.2f)", *x.Cost)
		}
		out = append(out, line)
	}
	return out
}
