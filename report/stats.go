package report

import (
	"fmt"
	"math"
	"sort"
)

// Interval is a 95% interval of a cell's best validation accuracy: over
// seeds (Student t) when there are two or more, else the Wilson score
// interval of the one run's accuracy on its validation images.
type Interval struct {
	N         int     `json:"n"` // runs
	Mean      float64 `json:"mean"`
	Std       float64 `json:"std"` // sample standard deviation (0 for one run)
	Low, High float64
	Method    string `json:"method"` // "t" or "wilson"
}

const z975 = 1.959963984540054 // standard normal 0.975 quantile

// t975 are Student's t 0.975 quantiles for 1..30 degrees of freedom.
var t975 = [...]float64{12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
	2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
	2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423}

// tQuantile975 is Student's t 0.975 quantile for df degrees of freedom
// (a table to 30, Cornish-Fisher beyond: within 1e-4).
func tQuantile975(df int) float64 {
	if df <= len(t975) {
		return t975[df-1]
	}
	z, n := z975, float64(df)
	return z + (z*z*z+z)/(4*n) + (5*math.Pow(z, 5)+16*z*z*z+3*z)/(96*n*n)
}

// seedInterval is the t interval of the mean of xs (two or more).
func seedInterval(xs []float64) Interval {
	n := float64(len(xs))
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / n
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	std := math.Sqrt(ss / (n - 1))
	half := tQuantile975(len(xs)-1) * std / math.Sqrt(n)
	return Interval{N: len(xs), Mean: mean, Std: std, Low: mean - half, High: mean + half, Method: "t"}
}

// wilson is the Wilson score interval of an accuracy p on n images.
func wilson(p float64, n int) Interval {
	nf := float64(n)
	den := 1 + z975*z975/nf
	center := (p + z975*z975/(2*nf)) / den
	half := z975 * math.Sqrt(p*(1-p)/nf+z975*z975/(4*nf*nf)) / den
	return Interval{N: 1, Mean: p, Low: center - half, High: center + half, Method: "wilson"}
}

// cellKey is a (model, resolution) cell of the map.
type cellKey struct {
	model string
	res   int
}

// cellIntervals are the intervals of every cell with a best accuracy.
func (r *Report) cellIntervals() map[cellKey]Interval {
	accs := map[cellKey][]float64{}
	val := map[cellKey]int{}
	for _, x := range r.Rows {
		if x.BestValAcc == nil {
			continue
		}
		k := cellKey{x.Model, x.Resolution}
		accs[k] = append(accs[k], *x.BestValAcc)
		val[k] = max(val[k], x.ValImages)
	}
	out := map[cellKey]Interval{}
	for k, xs := range accs {
		switch {
		case len(xs) >= 2:
			out[k] = seedInterval(xs)
		case val[k] > 0:
			out[k] = wilson(xs[0], val[k])
		}
	}
	return out
}

// withinNoise says, per model, which resolution has the best mean and
// which others' intervals overlap the best one's.
func (r *Report) withinNoise() (models []string, best map[string]int, near map[string][]int) {
	iv := r.cellIntervals()
	best, near = map[string]int{}, map[string][]int{}
	names, _ := r.byModel()
	for _, m := range names {
		var top *cellKey
		for k := range iv {
			if k.model == m && (top == nil || iv[k].Mean > iv[*top].Mean || iv[k].Mean == iv[*top].Mean && k.res < top.res) {
				k := k
				top = &k
			}
		}
		if top == nil {
			continue
		}
		models, best[m] = append(models, m), top.res
		for k, v := range iv {
			if k.model == m && k != *top && v.High >= iv[*top].Low && v.Low <= iv[*top].High {
				near[m] = append(near[m], k.res)
			}
		}
		sort.Ints(near[m])
	}
	return models, best, near
}

// Difference is mean(a) - mean(b) with its 95% Welch interval (unequal
// variances; degrees of freedom by Welch-Satterthwaite, rounded down so the
// interval errs wide).
type Difference struct {
	Diff, Low, High float64
	DF              float64
}

// WelchDifference compares two samples of two or more values each.
func WelchDifference(a, b []float64) (Difference, error) {
	if len(a) < 2 || len(b) < 2 {
		return Difference{}, fmt.Errorf("a Welch interval needs two or more values on each side, got %d and %d", len(a), len(b))
	}
	ia, ib := seedInterval(a), seedInterval(b)
	va, vb := ia.Std*ia.Std/float64(ia.N), ib.Std*ib.Std/float64(ib.N)
	d := Difference{Diff: ia.Mean - ib.Mean}
	if va+vb == 0 {
		d.Low, d.High, d.DF = d.Diff, d.Diff, math.Inf(1)
		return d, nil
	}
	d.DF = (va + vb) * (va + vb) / (va*va/float64(ia.N-1) + vb*vb/float64(ib.N-1))
	half := tQuantile975(max(1, int(d.DF))) * math.Sqrt(va+vb)
	d.Low, d.High = d.Diff-half, d.Diff+half
	return d, nil
}
