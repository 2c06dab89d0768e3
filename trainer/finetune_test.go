package trainer_test

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/trainer"
)

// Fine-tuning works as fine-tuning: a smallcnn trained by ResoMap on
// Fashion-MNIST's classes 0-4, saved as a .pth by python3-torch, then
// fine-tuned on classes 5-9 from a few hundred images, is clearly better
// after 2 epochs than the same training from scratch.
func TestFineTuningBeatsScratchOnLittleData(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	dir := t.TempDir()
	upper, lower := filepath.Join(dir, "classes0-4"), filepath.Join(dir, "classes5-9")
	writeClasses(t, upper, 0, 6000, 1000)
	writeClasses(t, lower, 5, 300, 1000)
	hyper := sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Schedule: "cosine", LabelSmoothing: 0.1, CropPadding: 2, Flip: true}
	cfg := sweep.Config{Model: "smallcnn", Resolution: 28, Epochs: 3, Hyper: hyper, Seed: 1, Data: upper}
	var last []byte
	ctx := context.Background()
	if _, err := tr.Train(ctx, cfg, nil, trainer.RunOptions{OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
		last = c.Model
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	st, pth := filepath.Join(dir, "pretrained.safetensors"), filepath.Join(dir, "pretrained.pth")
	os.WriteFile(st, last, 0o644)
	if out, err := exec.Command(py, "testdata/to_pth.py", st, pth).CombinedOutput(); err != nil {
		t.Fatalf("to_pth.py: %v\n%s", err, out)
	}
	tr.Weights.CacheDir = t.TempDir()
	accuracy := func(init *sweep.Init) float64 {
		c := sweep.Config{Model: "smallcnn", Resolution: 28, Epochs: 2, Hyper: hyper, Seed: 2, Data: lower, Init: init}
		c, err := tr.Prepare(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		var best float64
		_, err = tr.Train(ctx, c, nil, trainer.RunOptions{OnCheckpoint: func(_ context.Context, ck *checkpoint.Checkpoint) error {
			best = ck.Record.BestValAcc
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return best
	}
	scratch := accuracy(nil)
	tuned := accuracy(&sweep.Init{Weights: pth, LRScale: 1, BatchNorm: sweep.BatchNormKeep})
	frozen := accuracy(&sweep.Init{Weights: pth, LRScale: 1, FreezeEpochs: 1, BatchNorm: sweep.BatchNormKeep})
	t.Logf("classes 5-9 from 300 images, 2 epochs: from scratch %.3f, fine-tuned from classes 0-4 %.3f (first epoch frozen %.3f)", scratch, tuned, frozen)
	if tuned < scratch+0.05 {
		t.Errorf("fine-tuned %.3f, from scratch %.3f: want at least 5 points better", tuned, scratch)
	}
	if frozen < scratch+0.05 {
		t.Errorf("fine-tuned with the first epoch frozen %.3f, from scratch %.3f", frozen, scratch)
	}
}

// writeClasses writes an IDX folder of Fashion-MNIST's classes from..from+4
// (labels 0-4): the first n training and nVal test images of them.
func writeClasses(t *testing.T, dir string, from, n, nVal int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for _, split := range []struct {
		src, dst string
		n        int
	}{{"train", "train", n}, {"t10k", "t10k", nVal}} {
		imgs := readGz(t, filepath.Join(dataset.FashionMNISTDir, split.src+"-images-idx3-ubyte.gz"))[16:]
		labels := readGz(t, filepath.Join(dataset.FashionMNISTDir, split.src+"-labels-idx1-ubyte.gz"))[8:]
		var outImgs, outLabels []byte
		for i, l := range labels {
			if int(l) >= from && int(l) < from+5 && len(outLabels) < split.n {
				outImgs = append(outImgs, imgs[i*784:(i+1)*784]...)
				outLabels = append(outLabels, l-byte(from))
			}
		}
		m := len(outLabels)
		hdr := func(magic byte, dims ...int) []byte {
			b := []byte{0, 0, 8, magic}
			for _, d := range dims {
				b = binary.BigEndian.AppendUint32(b, uint32(d))
			}
			return b
		}
		os.WriteFile(filepath.Join(dir, split.dst+"-images-idx3-ubyte"), append(hdr(3, m, 28, 28), outImgs...), 0o644)
		os.WriteFile(filepath.Join(dir, split.dst+"-labels-idx1-ubyte"), append(hdr(1, m), outLabels...), 0o644)
	}
}

func readGz(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
