package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/resomap/resomap/sweep"
)

// A training whose epochs ran under two arithmetics (it moved between
// unlike workers) is flagged by name; one arithmetic throughout is said
// once; rows of workers before fingerprints say nothing.
func TestReportFlagsTrainingsOfMixedNumerics(t *testing.T) {
	host := sweep.Numerics{Torch: "1.13.1", Device: "cpu", BLAS: "OpenBLAS Zen", CPU: "avx512", Threads: 2}.String()
	box := sweep.Numerics{Torch: "1.13.1", Device: "cpu", BLAS: "OpenBLAS Haswell", CPU: "avx2", Threads: 1}.String()
	var moved sweep.Outcome
	moved.AddNumerics([]string{host})
	moved.AddNumerics([]string{host, box})
	moved.AddNumerics(nil)
	if !moved.MixedNumerics() || len(moved.Numerics) != 2 {
		t.Fatalf("numerics %q", moved.Numerics)
	}
	render := func(rows ...Row) string {
		var b bytes.Buffer
		(&Report{Rows: rows}).writeNumerics(&b)
		return b.String()
	}
	if got := render(Row{Model: "smallcnn", Resolution: 32}); got != "" {
		t.Errorf("no fingerprints: %q", got)
	}
	one := render(Row{Model: "smallcnn", Resolution: 32, Numerics: []string{host}}, Row{Model: "smallcnn", Resolution: 48, Numerics: []string{host}})
	if !strings.Contains(one, "Every epoch recorded with its numerics ran under "+host) || strings.Contains(one, "moved") {
		t.Errorf("one arithmetic:\n%s", one)
	}
	two := render(Row{Model: "smallcnn", Resolution: 32, Numerics: []string{host}},
		Row{Model: "smallcnn", Resolution: 48, Seed: 2, Numerics: moved.Numerics})
	if !strings.Contains(two, "2 arithmetics") || !strings.Contains(two, "**smallcnn@48-seed2** ran under 2: "+host+"; then "+box) ||
		strings.Contains(two, "smallcnn@32**") {
		t.Errorf("a training that moved:\n%s", two)
	}
	if !strings.Contains(host, "OpenBLAS Zen") || !strings.Contains(host, "2 threads") || strings.Contains(sweep.Numerics{Torch: "2.6", Device: "cuda:0", Precision: "bf16"}.String(), "threads") {
		t.Errorf("fingerprints: %q", host)
	}
}
