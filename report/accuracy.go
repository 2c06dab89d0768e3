package report

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// accuracyPlot draws, per model, each run's best validation accuracy as a
// small point, the mean over seeds as a line, and the 95% interval as a
// band (over seeds, or the Wilson interval of a single run).
func (r *Report) accuracyPlot() (*plot.Plot, error) {
	p := newPlot("Best validation accuracy vs resolution (mean, 95% interval, runs)", "input resolution (px, log scale)", "top-1 accuracy")
	res := r.resolutions()
	if len(res) > 1 {
		p.X.Scale = plot.LogScale{}
	}
	p.X.Tick.Marker = resolutionTicks(res)
	p.Y.Tick.Marker = fineTicks{}
	iv := r.cellIntervals()
	names, rows := r.byModel()
	for i, name := range names {
		if err := r.addModelAccuracy(p, i, name, rows[name], res, iv); err != nil {
			return nil, err
		}
	}
	if len(res) > 0 {
		p.X.Min, p.X.Max = float64(res[0])/1.15, float64(res[len(res)-1])*1.15
	}
	p.Legend.Top, p.Legend.Left = false, false
	return p, nil
}

// addModelAccuracy adds one model's band, mean line and run points.
func (r *Report) addModelAccuracy(p *plot.Plot, i int, name string, rows []Row, res []int, iv map[cellKey]Interval) error {
	var mean, lo, hi, runs plotter.XYs
	for _, x := range rows {
		if x.BestValAcc != nil {
			runs = append(runs, plotter.XY{X: float64(x.Resolution), Y: *x.BestValAcc})
		}
	}
	for _, rr := range res {
		if v, ok := iv[cellKey{name, rr}]; ok {
			x := float64(rr)
			mean, lo, hi = append(mean, plotter.XY{X: x, Y: v.Mean}), append(lo, plotter.XY{X: x, Y: v.Low}), append(hi, plotter.XY{X: x, Y: v.High})
		}
	}
	if len(mean) == 0 {
		return nil
	}
	c := plotutil.Color(i)
	if len(mean) > 1 {
		band := append(plotter.XYs{}, hi...)
		for k := len(lo) - 1; k >= 0; k-- {
			band = append(band, lo[k])
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return err
		}
		r8, g8, b8, _ := c.RGBA()
		poly.Color = color.NRGBA{R: uint8(r8 >> 8), G: uint8(g8 >> 8), B: uint8(b8 >> 8), A: 50}
		poly.LineStyle.Width = 0
		p.Add(poly)
	}
	line, points, err := plotter.NewLinePoints(mean)
	if err != nil {
		return err
	}
	line.Color, line.Width, points.Color, points.Shape = c, vg.Points(2), c, plotutil.Shape(i)
	dots, err := plotter.NewScatter(runs)
	if err != nil {
		return err
	}
	dots.Color, dots.Radius, dots.Shape = c, vg.Points(2), plotutil.Shape(i)
	bars, err := plotter.NewYErrorBars(errorBars(mean, lo, hi))
	if err != nil {
		return err
	}
	bars.Color = c
	p.Add(line, points, dots, bars)
	p.Legend.Add(name, line, points)
	return nil
}

// errorBars pairs means with their interval ends.
type intervalBars struct {
	plotter.XYs
	low, high []float64
}

func (b intervalBars) YError(i int) (float64, float64) {
	return b.XYs[i].Y - b.low[i], b.high[i] - b.XYs[i].Y
}

func errorBars(mean, lo, hi plotter.XYs) intervalBars {
	b := intervalBars{XYs: mean}
	for k := range mean {
		b.low, b.high = append(b.low, lo[k].Y), append(b.high, hi[k].Y)
	}
	return b
}
