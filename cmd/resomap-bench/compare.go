package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/resomap/resomap/report"
)

// jobRun is one line of bench/torch_train_reference.py or --job.
type jobRun struct {
	Impl      string   `json:"impl"`
	Model     string   `json:"model"`
	Res       int      `json:"res"`
	Seed      uint64   `json:"seed"`
	Epochs    int      `json:"epochs"`
	Train     int      `json:"train"`
	EpochRows []jobRow `json:"epoch_rows"`
	BestAcc   float64  `json:"best_acc"`
}

// imagesPerSecond is the run's training images over its time outside
// validation, all epochs together.
func (r jobRun) imagesPerSecond() float64 {
	var s float64
	for _, e := range r.EpochRows {
		s += e.TrainSeconds
	}
	return float64(r.Train*len(r.EpochRows)) / s
}

// worstSlowdown is how much slower than the first its slowest epoch was.
func (r jobRun) worstSlowdown() float64 {
	worst := 0.0
	for _, e := range r.EpochRows[1:] {
		worst = math.Max(worst, r.EpochRows[0].TrainImagesPerS/e.TrainImagesPerS-1)
	}
	return worst
}

type jobCase struct {
	model       string
	res, epochs int
}

// compareJobs prints, per job, ResoMap's training throughput against the
// PyTorch script's and their best accuracies with the Welch interval of
// the difference, from the JSON lines in path.
func compareJobs(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runs := map[jobCase]map[string][]jobRun{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r jobRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || len(r.EpochRows) == 0 {
			return fmt.Errorf("%s: not a run: %.80s", path, sc.Text())
		}
		k := jobCase{r.Model, r.Res, r.Epochs}
		if runs[k] == nil {
			runs[k] = map[string][]jobRun{}
		}
		runs[k][r.Impl] = append(runs[k][r.Impl], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	keys := make([]jobCase, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a.model < b.model || a.model == b.model && (a.res < b.res || a.res == b.res && a.epochs < b.epochs)
	})
	fmt.Printf("%-9s %4s %6s %5s %14s %14s %7s %10s   %s\n", "model", "res", "epochs", "seeds", "ResoMap img/s", "PyTorch img/s", "ratio", "slowest ep", "best accuracy: ResoMap, PyTorch, difference (95% Welch)")
	for _, k := range keys {
		ours, ref := runs[k]["resomap"], runs[k]["pytorch"]
		if len(ours) == 0 || len(ref) == 0 {
			return fmt.Errorf("%s@%d %d epochs: runs of one side only", k.model, k.res, k.epochs)
		}
		var oi, ri, oa, ra []float64
		slow := 0.0
		for _, r := range ours {
			oi, oa = append(oi, r.imagesPerSecond()), append(oa, r.BestAcc)
			slow = math.Max(slow, r.worstSlowdown())
		}
		for _, r := range ref {
			ri, ra = append(ri, r.imagesPerSecond()), append(ra, r.BestAcc)
		}
		acc := fmt.Sprintf("%.4f, %.4f", mean(oa), mean(ra))
		if d, err := report.WelchDifference(oa, ra); err == nil {
			verdict := "differ by less than 1 point or than the interval"
			if math.Abs(d.Diff) >= 0.01 && (d.Low > 0 || d.High < 0) {
				verdict = "DIFFER"
			}
			acc += fmt.Sprintf(", %+.4f [%+.4f, %+.4f]: %s", d.Diff, d.Low, d.High, verdict)
		}
		fmt.Printf("%-9s %4d %6d %5d %14.1f %14.1f %6.2fx %9.1f%%   %s\n", k.model, k.res, k.epochs, min(len(ours), len(ref)),
			mean(oi), mean(ri), mean(oi)/mean(ri), 100*slow, acc)
	}
	return nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
