package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// A sweep over two seeds: each (model, resolution) cell gets the mean, the
// standard deviation and Student's t 95% interval of its runs' best
// accuracies; a cell with one run gets the Wilson interval of that run on
// its validation images. The CSV's figures match a reference computation.
func TestSeedIntervalsMatchAReferenceComputation(t *testing.T) {
	ctx := context.Background()
	st, _ := store.NewFile(t.TempDir())
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Seeds, spec.Epochs = "seeds", []string{"smallcnn"}, []int{16, 24}, []uint64{1, 2}, 1
	b, _ := json.Marshal(spec)
	st.Put(ctx, results.SpecKey("seeds"), bytes.NewReader(b))
	idx := results.Index{Store: st}
	for _, run := range []struct {
		res  int
		seed uint64
		acc  float64
	}{{16, 1, 0.80}, {16, 2, 0.84}, {24, 1, 0.81}} {
		o := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Family: "cnn", Resolution: run.res, Seed: run.seed}, Status: sweep.Completed, Epochs: 1, DataFacts: sweep.DataFacts{ValImages: 2000}}
		o.BestEpoch, o.BestValAcc = 1, run.acc
		if err := idx.PutOutcome(ctx, "seeds", o); err != nil {
			t.Fatal(err)
		}
	}
	r, err := report.Build(ctx, st, "seeds")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(filepath.Join(dir, "results.csv"))
	rows, _ := csv.NewReader(f).ReadAll()
	f.Close()
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if len(rows) != 1+4 {
		t.Fatalf("%d rows, want header + 4 (2 resolutions x 2 seeds)", len(rows))
	}
	// Reference: t(0.975, 1 df) = 12.7062; Wilson with z = 1.95996.
	mean, std := 0.82, math.Sqrt(2*0.02*0.02)
	half := 12.7062 * std / math.Sqrt(2)
	z, p, n := 1.959963984540054, 0.81, 2000.0
	center := (p + z*z/(2*n)) / (1 + z*z/n)
	whalf := z * math.Sqrt(p*(1-p)/n+z*z/(4*n*n)) / (1 + z*z/n)
	want := map[string][5]float64{
		"16": {2, mean, std, mean - half, mean + half},
		"24": {1, 0.81, 0, center - whalf, center + whalf},
	}
	for _, row := range rows[1:] {
		w := want[row[col["resolution"]]]
		for k, name := range []string{"seeds", "best_val_acc_mean", "best_val_acc_std", "best_val_acc_ci95_low", "best_val_acc_ci95_high"} {
			got, _ := strconv.ParseFloat(row[col[name]], 64)
			if math.Abs(got-w[k]) > 1e-9 {
				t.Errorf("%s seed %s: %s %v, want %v", row[col["resolution"]], row[col["seed"]], name, got, w[k])
			}
		}
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !bytes.Contains(readme, []byte("**smallcnn**: best at 16 px, 0.8200")) || !bytes.Contains(readme, []byte("within noise of it: 24 px")) {
		t.Errorf("README's reading:\n%s", readme)
	}
}
