package report_test

import (
	"math"
	"testing"

	"github.com/resomap/resomap/report"
)

// The Welch interval of a difference of means matches a reference computed
// apart (Python: Welch-Satterthwaite degrees of freedom, Student's t
// quantile by integrating its density), on the ten accuracies.
func TestWelchDifferenceMatchesAReferenceComputation(t *testing.T) {
	a := []float64{0.780, 0.772, 0.699, 0.854, 0.874}
	b := []float64{0.814, 0.802, 0.814, 0.879, 0.871}
	d, err := report.WelchDifference(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"diff", d.Diff, -0.0402}, {"df", d.DF, 5.974444523289628}, {"low", d.Low, -0.130877798022543}, {"high", d.High, 0.050477798022542986}} {
		if math.Abs(c.got-c.want) > 1e-4 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if _, err := report.WelchDifference(a[:1], b); err == nil {
		t.Error("one value on a side: no error")
	}
	same, err := report.WelchDifference([]float64{0.5, 0.5}, []float64{0.25, 0.25})
	if err != nil || same.Low != 0.25 || same.High != 0.25 {
		t.Errorf("no spread: %+v, %v; want the difference 0.25 exactly", same, err)
	}
}
