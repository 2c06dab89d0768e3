package report

import (
	"testing"

	"gonum.org/v1/plot"
)

// Learning-curve panels of one model share their y range; an empty panel
// (a run with no epochs) takes it too and widens nothing.
func TestPanelsShareTheirYAxis(t *testing.T) {
	a, b, empty := plot.New(), plot.New(), plot.New()
	a.Y.Min, a.Y.Max = 0.2, 0.9
	b.Y.Min, b.Y.Max = 0.5, 1.4
	shareY([]*plot.Plot{a, b, empty})
	for _, p := range []*plot.Plot{a, b, empty} {
		if p.Y.Min != 0.2 || p.Y.Max != 1.4 {
			t.Errorf("y range %v..%v, want 0.2..1.4", p.Y.Min, p.Y.Max)
		}
	}
}
