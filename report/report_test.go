package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/report"
	"github.com/resomap/resomap/results"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// recordSmallSweep trains two real combinations and records them with a
// failed one, a skipped one and one never started, as a sweep would.
func recordSmallSweep(t *testing.T, st store.Store) map[string]sweep.Outcome {
	t.Helper()
	ctx := context.Background()
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions, spec.Epochs = "tiny", []string{"smallcnn", "resnet18"}, []int{16, 24, 32}, 2
	spec.Data, spec.TrainLimit, spec.ValLimit, spec.Seed = "fashion-mnist", 640, 200, 5
	spec.Hyper = sweep.SpecHyper{Hyper: sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Schedule: "cosine"}}
	b, _ := json.Marshal(spec)
	if err := st.Put(ctx, results.SpecKey("tiny"), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	tr, err := trainer.New("", "cpu", 2)
	if err != nil {
		t.Fatal(err)
	}
	tr.Data = dataset.Options{CacheDir: t.TempDir()}
	idx := results.Index{Store: st}
	out := map[string]sweep.Outcome{}
	for _, res := range []int{16, 24} {
		r, err := tr.Train(ctx, spec.Config(sweep.Combination{Model: "smallcnn", Resolution: res}), nil, trainer.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rec := r.Last.Record
		o := sweep.Outcome{
			Identity: sweep.Identity{Model: "smallcnn", Family: "cnn", Resolution: res, ConfigHash: rec.ConfigHash},
			Status:   sweep.Completed, Epochs: 2, Progress: rec.Progress,
			Course:    sweep.Course{Device: "cpu"},
			Timings:   sweep.Timings{WallSeconds: 30, EpochSeconds: 3, EpochRuns: 2, TrainSeconds: 2, EvalSeconds: 0.5, CkptSeconds: 0.1, RestoreSeconds: 0.2},
			DataFacts: sweep.DataFacts{Augment: rec.Data.Augment, NativeSide: 14},
		}
		if res == 16 {
			// Ten seconds an epoch queued or paused, 4 s preparing, 3 s
			// building a cold data cache, one of the two epochs next to
			// another training.
			o.WaitSeconds, o.PrepareSeconds, o.DeviceSeconds, o.SharedEpochs = 20, 4, 2.25, 1
			o.CacheBuildSeconds = 3
			o.SkippedImages = 3 // as if three photos had not decoded
			o.StartedFrom = "torchvision:resnet18 (sha256 f37072fd…)"
		}
		if res == 24 {
			o.Status, o.Reason, o.SkippedFrom = sweep.Skipped, "already completed by sweep earlier", "earlier"
		}
		out[o.ID()] = o
	}
	out["smallcnn@32"] = sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Family: "cnn", Resolution: 32}, Status: sweep.Failed, Epochs: 2, Reason: "epoch 1: out of memory"}
	out["resnet18@16"] = sweep.Outcome{Identity: sweep.Identity{Model: "resnet18", Family: "resnet", Resolution: 16}, Status: sweep.Cancelled, Epochs: 2, Reason: "cancelled by signal"}
	for _, o := range out {
		if err := idx.PutOutcome(ctx, "tiny", o); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestReportAgreesWithRecordsAndMarksWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	st, _ := store.NewFile(t.TempDir())
	want := recordSmallSweep(t, st)
	r, err := report.Build(ctx, st, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r.Links = report.Links{WorkflowURL: func(id string) string { return "http://ui.test/workflows/" + id }}
	if _, err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	checkIndexHTML(t, filepath.Join(dir, "index.html"))

	// CSV: one row per combination of the spec, values as recorded.
	f, _ := os.Open(filepath.Join(dir, "results.csv"))
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+6 {
		t.Fatalf("results.csv has %d rows, want header + 6 combinations", len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		id := row[col["model"]] + "@" + row[col["resolution"]]
		o, ok := want[id]
		if !ok {
			if row[col["status"]] != report.Missing || row[col["best_val_acc"]] != "" || row[col["images_per_s"]] != "" {
				t.Errorf("%s: unrecorded combination shown as %q with acc %q", id, row[col["status"]], row[col["best_val_acc"]])
			}
			continue
		}
		if row[col["status"]] != string(o.Status) {
			t.Errorf("%s: status %q, recorded %q", id, row[col["status"]], o.Status)
		}
		wantTrain := ""
		if sp, ok := o.EpochSplit(); ok && o.Status != sweep.Skipped {
			wantTrain = strconv.FormatFloat(sp.Train, 'f', 3, 64)
		}
		if h := o.ComputeHours(); h > 0 && row[col["compute_hours"]] != strconv.FormatFloat(h, 'g', -1, 64) {
			t.Errorf("%s: compute_hours %q, want %v", id, row[col["compute_hours"]], h)
		}
		wantBuild := ""
		if o.CacheBuildSeconds > 0 && o.Status != sweep.Skipped {
			wantBuild = strconv.FormatFloat(o.CacheBuildSeconds, 'g', -1, 64)
		}
		if row[col["cache_build_s"]] != wantBuild {
			t.Errorf("%s: cache_build_s %q, want %q", id, row[col["cache_build_s"]], wantBuild)
		}
		if row[col["train_s_per_epoch"]] != wantTrain {
			t.Errorf("%s: train_s_per_epoch %q, want %q", id, row[col["train_s_per_epoch"]], wantTrain)
		}
		if row[col["augment"]] != o.Augment || row[col["skipped_images"]] != strconv.Itoa(o.SkippedImages) {
			t.Errorf("%s: augment %q, skipped %q; recorded %q, %d", id, row[col["augment"]], row[col["skipped_images"]], o.Augment, o.SkippedImages)
		}
		if o.BestEpoch > 0 {
			if got, _ := strconv.ParseFloat(row[col["best_val_acc"]], 64); got != o.BestValAcc {
				t.Errorf("%s: best_val_acc %v, recorded %v", id, got, o.BestValAcc)
			}
			if got, _ := strconv.ParseFloat(row[col["final_val_acc"]], 64); got != o.Metrics[len(o.Metrics)-1].ValAcc {
				t.Errorf("%s: final_val_acc %v", id, got)
			}
		} else if row[col["best_val_acc"]] != "" || row[col["best_epoch"]] != "" {
			t.Errorf("%s (%s): shows accuracy %q instead of nothing", id, o.Status, row[col["best_val_acc"]])
		}
	}

	// JSON says the same, with null for what does not exist.
	var doc struct {
		Rows []map[string]any `json:"results"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, row := range doc.Rows {
		id := row["model"].(string) + "@" + strconv.Itoa(int(row["resolution"].(float64)))
		o, ok := want[id]
		switch {
		case !ok:
			if row["status"] != report.Missing || row["best_val_acc"] != nil {
				t.Errorf("json %s: %v", id, row)
			}
		case o.BestEpoch > 0:
			if row["best_val_acc"] != o.BestValAcc {
				t.Errorf("json %s: best_val_acc %v, recorded %v", id, row["best_val_acc"], o.BestValAcc)
			}
		default:
			if row["best_val_acc"] != nil || row["status"] != string(o.Status) || row["reason"] != o.Reason {
				t.Errorf("json %s: %v", id, row)
			}
		}
	}

	// The figure decodes, has its size and is not blank.
	pf, err := os.Open(filepath.Join(dir, "resomap.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(pf)
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != report.FigureWidthPx || b.Dy() != report.FigureHeightPx {
		t.Fatalf("resomap.png is %v, want %dx%d", b, report.FigureWidthPx, report.FigureHeightPx)
	}
	if colours, inked := inkOf(img); colours < 8 || inked < 0.01 {
		t.Fatalf("resomap.png looks blank: %d colours, %.3f of pixels not white", colours, inked)
	}
	for _, name := range []string{"resomap.svg", "heatmap.svg"} {
		sf, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := parseXML(sf); err != nil {
			t.Errorf("%s does not parse: %v", name, err)
		}
		sf.Close()
	}
	for _, name := range []string{"heatmap.png", "pareto.png", "pareto.svg", "learning_curves_smallcnn.png", "learning_curves_resnet18.png", "README.md"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", name)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	for _, s := range []string{"![resomap](resomap.png)", "smallcnn@32 **failed**: epoch 1: out of memory", "| resnet18 | 32 | missing |",
		"Data recipe: cifar.", "did not decode (skip_bad_images): smallcnn@16: 3.",
		"| smallcnn | 16 | 1.00 | 0.25 | 0.050 | 0.100 | 0.100 | 0.250 (16.7%) | 10.00 | 4.0 | 3.0 |",
		"Shared a device with other trainings or data cache builds: smallcnn@16 (1 of 2 epochs).",
		"## Accuracy for the compute: the Pareto front", "for 0.001 compute hours",
		"**Upsampled**: these resolutions are more than 1.25x the data's native image size", "smallcnn@24 (data 14 px)",
		"- smallcnn@16: fine-tuned from torchvision:resnet18 (sha256 f37072fd…)", "The others started from scratch."} {
		if !bytes.Contains(readme, []byte(s)) {
			t.Errorf("README.md lacks %q", s)
		}
	}
}

func inkOf(img image.Image) (colours int, inked float64) {
	seen := map[[3]uint32]bool{}
	n, ink := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			n++
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
		}
	}
	return len(seen), float64(ink) / float64(n)
}

func parseXML(r io.Reader) error {
	dec := xml.NewDecoder(r)
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if root != "svg" {
				return errors.New("root element is " + root)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
}

func TestUnknownSweepIsAClearError(t *testing.T) {
	st, _ := store.NewFile(t.TempDir())
	_, err := report.Build(context.Background(), st, "nope")
	if !errors.Is(err, report.ErrNoSweep) {
		t.Fatalf("error %v, want ErrNoSweep", err)
	}
}

// index.html is one self-contained page: the figures inline (SVG, or PNG
// as data), the tables, what each run started from and a link to each run;
// nothing it shows comes from another file or the network.
func checkIndexHTML(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{"<svg", "data:image/png;base64,", "<table>", ">smallcnn<", "fine-tuned from torchvision:resnet18",
		`href="http://ui.test/workflows/sweep-tiny/smallcnn@16"`, "epoch 1: out of memory", "<h2>Sweep spec</h2>"} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	for _, bad := range []string{`src="http`, `href="resomap.png"`, `<link `, `<script src`} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html refers to another file: %q", bad)
		}
	}
	if strings.Count(page, "<figure>") < 4 {
		t.Errorf("index.html has %d figures", strings.Count(page, "<figure>"))
	}
}
