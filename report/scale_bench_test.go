package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
)

// BenchmarkReportOfManyTrainings builds and writes the report of a sweep
// of 4 models x 25 resolutions x N/100 seeds (every outcome with its
// per-epoch figures, as the store holds them) and prints how long it took.
func BenchmarkReportOfManyTrainings(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st, err := store.NewFile(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			spec := sweep.Defaults()
			spec.Name, spec.Epochs = "many", 5
			spec.Models = []string{"smallcnn", "resnet18", "vgg11", "resnet50"}
			spec.Resolutions = nil
			for r := range 25 {
				spec.Resolutions = append(spec.Resolutions, 32+8*r)
			}
			spec.Seeds = nil
			for s := range n / 100 {
				spec.Seeds = append(spec.Seeds, uint64(s+1))
			}
			idx := results.Index{Store: st}
			ctx := b.Context()
			if err := idx.PutSpec(ctx, spec); err != nil {
				b.Fatal(err)
			}
			for k, c := range spec.Combinations() {
				o := sweep.Outcome{
					Identity: sweep.Identity{Model: c.Model, Family: sweep.FamilyOf(c.Model), Resolution: c.Resolution, Seed: c.Seed, ConfigHash: fmt.Sprintf("%064x", k)},
					Epochs:   5, Status: sweep.Completed,
					Timings: sweep.Timings{EpochSeconds: 50, TrainSeconds: 40, EvalSeconds: 5, DeviceSeconds: 45, WallSeconds: 60},
				}
				for e := 1; e <= 5; e++ {
					acc := 0.5 + 0.1*float64(e)/5 + float64(c.Resolution)/2000 + float64(k%7)/1000
					o.Metrics = append(o.Metrics, sweep.EpochMetrics{Epoch: e, TrainLoss: 1 / float64(e), TrainAcc: acc, ValLoss: 1.1 / float64(e),
						ValAcc: acc, LR: 0.1, Seconds: 10, ImagesPS: 1000, DeviceSeconds: 9})
				}
				o.EpochsDone, o.BestEpoch, o.BestValLoss, o.BestValAcc = 5, 5, o.Metrics[4].ValLoss, o.Metrics[4].ValAcc
				if err := idx.PutOutcome(ctx, spec.Name, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				began := time.Now()
				r, err := Build(ctx, st, spec.Name)
				if err != nil {
					b.Fatal(err)
				}
				built := time.Since(began)
				files, err := r.Write(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%d trainings: read and built in %v, written (%d files) in %v", len(r.Rows), built.Round(time.Millisecond),
					len(files), (time.Since(began) - built).Round(time.Millisecond))
			}
		})
	}
}
