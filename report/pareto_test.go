package report_test

import (
	"fmt"
	"testing"

	"github.com/resomap/resomap/report"
)

// The Pareto front of hand-made points: cheapest first, each more accurate
// than the one before; dominated points (costlier and no better, or as
// costly and worse) are left out.
func TestParetoFront(t *testing.T) {
	cost := []float64{1, 2, 2, 3, 5, 4, 0.5, 5}
	acc := []float64{0.70, 0.80, 0.75, 0.80, 0.90, 0.85, 0.60, 0.88}
	got := report.ParetoFront(cost, acc)
	if fmt.Sprint(got) != "[6 0 1 5 4]" {
		t.Fatalf("front %v, want [6 0 1 5 4]", got)
	}
	if len(report.ParetoFront(nil, nil)) != 0 {
		t.Fatal("a front of nothing")
	}
}
