package trainer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// A resnet18 state dict saved with torch.save by Debian's python3-torch
// loads with every key checked, and ResoMap's logits then equal PyTorch's
// for the same weights; the same dict wrapped as training scripts save it
// loads too; a .pth of another architecture fails naming the first key
// that does not fit; strides and int64 tensors are read as PyTorch holds
// them.
func TestPretrainedPthLoadsWithPyTorchsLogits(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	const n, c, res = 2, 3, 64
	rng := rand.New(rand.NewPCG(4, 5))
	batch := randomBatch(rng, n, c, res, 1000, false)
	dir := t.TempDir()
	xp := filepath.Join(dir, "x.bin")
	os.WriteFile(xp, batch.Images, 0o644)
	if out, err := exec.Command(py, "testdata/pretrained.py", dir, xp, "2", "3", "64", "64", "0.5", "0.25").CombinedOutput(); err != nil {
		t.Fatalf("pretrained.py: %v\n%s", err, out)
	}
	model := func(classes int) *torch.Model {
		m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "resnet18", InChannels: c, NumClasses: classes, InitSeed: 1,
			Momentum: 0.9, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "logits.bin"))
	for _, file := range []string{"resnet18.pth", "wrapped.pth"} {
		w, err := pretrained.Read(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		m := model(1000)
		if err := trainer.LoadPretrained(m, w, ""); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		logits := make([]float32, n*1000)
		if _, _, err := m.Evaluate(batch, logits); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, v := range logits {
			ref := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			worst = max(worst, math.Abs(float64(v-ref)))
		}
		t.Logf("%s: %d tensors, logits differ from PyTorch's by %.2g at most", file, len(w), worst)
		if worst > 1e-4 {
			t.Errorf("%s: logits differ from PyTorch's by %g", file, worst)
		}
	}
	// Fine-tuning for 10 classes: the classifier is replaced, the rest kept.
	w, _ := pretrained.Read(filepath.Join(dir, "resnet18.pth"))
	if err := trainer.LoadPretrained(model(10), w, "fc."); err != nil {
		t.Fatalf("with the classifier replaced: %v", err)
	}
	if err := trainer.LoadPretrained(model(10), w, ""); !errors.Is(err, trainer.ErrWeightsMismatch) || !strings.Contains(err.Error(), "fc.weight") {
		t.Errorf("1000-class weights into a 10-class classifier: %v", err)
	}
	other, _ := pretrained.Read(filepath.Join(dir, "vgg11.pth"))
	err := trainer.LoadPretrained(model(10), other, "fc.")
	if !errors.Is(err, trainer.ErrWeightsMismatch) || !strings.Contains(err.Error(), "conv1.weight") {
		t.Errorf("vgg11's weights into resnet18: %v, want the first key named (conv1.weight)", err)
	}
	t.Logf("vgg11 into resnet18: %v", err)
	s, err := pretrained.Read(filepath.Join(dir, "strided.pth"))
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for i := range 6 {
		got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(s["t"].Data[4*i:])))
	}
	if s["t"].DType != "F32" || len(s["t"].Shape) != 2 || s["t"].Shape[0] != 3 || !equal(got, []float32{0, 3, 1, 4, 2, 5}) {
		t.Errorf("transposed tensor read as %v %v", s["t"].Shape, got)
	}
	if s["n"].DType != "I64" || int64(binary.LittleEndian.Uint64(s["n"].Data[8:])) != -2 {
		t.Errorf("int64 tensor read as %+v", s["n"])
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fine-tuning's learning-rate scale: the layers outside the classifier step
// at lr*scale, and not at all at scale 0 (frozen), while the classifier
// steps at lr; a model nobody scaled steps as before.
func TestLRScaleFreezesAndScalesAllButTheClassifier(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	rng := rand.New(rand.NewPCG(8, 9))
	batch := randomBatch(rng, 8, 1, 16, 10, true)
	deltas := func(scale float64) (features, head float64) {
		m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "smallcnn", InChannels: 1, NumClasses: 10, InitSeed: 2,
			Mean: []float32{0.5}, Std: []float32{0.25}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if scale >= 0 {
			if err := m.SetLRScale("classifier.0.", scale); err != nil {
				t.Fatal(err)
			}
		}
		before, _, _ := trainer.Export(m)
		if _, _, err := m.ForwardBackward(batch, 1, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.Step(0.1); err != nil {
			t.Fatal(err)
		}
		after, _, _ := trainer.Export(m)
		return changeOf(t, before, after, "features.0.weight"), changeOf(t, before, after, "classifier.0.weight")
	}
	f1, h1 := deltas(-1) // never scaled
	f0, h0 := deltas(0)
	fh, hh := deltas(0.5)
	if f1 == 0 || h1 == 0 || f0 != 0 || h0 != h1 || hh != h1 || math.Abs(fh/f1-0.5) > 1e-3 {
		t.Errorf("feature/classifier change: unscaled %g/%g, frozen %g/%g, half %g/%g", f1, h1, f0, h0, fh, hh)
	}
	m, _ := tr.Lib.NewModel(torch.ModelSpec{Name: "smallcnn", InChannels: 1, NumClasses: 10, Mean: []float32{0.5}, Std: []float32{0.25}})
	defer m.Close()
	if err := m.SetLRScale("classifier.0.", -1); err == nil {
		t.Error("a negative scale was accepted")
	}
}

// changeOf is the summed absolute change of one tensor between two exports.
func changeOf(t *testing.T, before, after []byte, name string) float64 {
	t.Helper()
	get := func(b []byte) []float32 {
		ts, _, err := checkpoint.DecodeSafetensors(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.Name == name {
				out := make([]float32, len(x.Data)/4)
				for i := range out {
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:]))
				}
				return out
			}
		}
		t.Fatalf("no tensor %s", name)
		return nil
	}
	a, b := get(before), get(after)
	sum := 0.0
	for i := range a {
		sum += math.Abs(float64(b[i] - a[i]))
	}
	return sum
}

// Colour weights on grey data: the first convolution's kernels are summed
// over their three input channels (timm's adapt_input_conv), every other
// tensor loads as it is; other shape mismatches are still refused.
func TestColourWeightsOnGreyDataSumTheFirstConvolution(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	model := func(channels int) *torch.Model {
		mean, std := make([]float32, channels), make([]float32, channels)
		for i := range mean {
			mean[i], std[i] = 0.5, 0.25
		}
		m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "resnet18", InChannels: channels, NumClasses: 10, InitSeed: 7,
			Momentum: 0.9, Mean: mean, Std: std})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	colour := model(3)
	weights := map[string]checkpoint.Tensor{}
	for i, ti := range colour.Tensors() {
		if strings.HasPrefix(ti.Name, "optimizer.") {
			continue
		}
		b := make([]byte, ti.NBytes)
		if err := colour.ReadTensor(i, b); err != nil {
			t.Fatal(err)
		}
		dtype := map[torch.DType]string{torch.F32: "F32", torch.I64: "I64"}[ti.DType]
		weights[ti.Name] = checkpoint.Tensor{Name: ti.Name, DType: dtype, Shape: ti.Shape, Data: b}
	}
	grey := model(1)
	if err := trainer.LoadPretrained(grey, weights, ""); err != nil {
		t.Fatalf("colour weights into a grey resnet18: %v", err)
	}
	f := func(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	for i, ti := range grey.Tensors() {
		if ti.Name != "conv1.weight" {
			continue
		}
		got := make([]byte, ti.NBytes)
		if err := grey.ReadTensor(i, got); err != nil {
			t.Fatal(err)
		}
		w := weights["conv1.weight"].Data
		const k = 7 * 7
		for o := range 64 {
			for j := range k {
				want := f(w, (o*3+0)*k+j) + f(w, (o*3+1)*k+j) + f(w, (o*3+2)*k+j)
				if g := f(got, o*k+j); g != want {
					t.Fatalf("conv1.weight[%d,0,%d] = %v, want the sum over RGB %v", o, j, g, want)
				}
			}
		}
	}
	// A 2-channel model is no grey one: refused, naming the channels.
	err := trainer.LoadPretrained(model(2), weights, "")
	if !errors.Is(err, trainer.ErrWeightsMismatch) || !strings.Contains(err.Error(), "the data has 2 channels") {
		t.Errorf("colour weights into a 2-channel model: %v", err)
	}
}

// Weights of another architecture are refused when the training is
// prepared (non-retryable, naming the first key that does not fit), not at
// its first epoch; weights that fit pass, and so do a ViT's made for
// another image size.
func TestPrepareRefusesWeightsOfAnotherArchitecture(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	tr.Weights.CacheDir = t.TempDir()
	m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "smallcnn", InChannels: 1, NumClasses: 10, Mean: []float32{0.5}, Std: []float32{0.25}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	weights, _, err := trainer.Export(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "smallcnn.safetensors")
	os.WriteFile(path, weights, 0o644)
	hyper := sweep.Hyper{BatchSize: 32, Optimizer: "sgd", LR: 0.05, Schedule: "constant"}
	prepare := func(model string, res int) error {
		init := &sweep.Init{Weights: path, LRScale: 1, BatchNorm: sweep.BatchNormKeep}
		_, err := tr.Prepare(context.Background(), sweep.Config{Model: model, Resolution: res, Epochs: 1, Hyper: hyper, Seed: 1,
			Data: sweep.DefaultData, Init: init})
		return err
	}
	if err := prepare("smallcnn", 28); err != nil {
		t.Fatalf("smallcnn's own weights: %v", err)
	}
	err = prepare("resnet18", 32)
	if !errors.Is(err, trainer.ErrWeightsMismatch) || !strings.Contains(err.Error(), "conv1.weight") {
		t.Fatalf("smallcnn's weights for resnet18: %v, want a mismatch naming conv1.weight", err)
	}

	// A ViT's weights for 32 px prepare a training at 48 px (resized).
	vit, err := tr.Lib.NewModel(torch.ModelSpec{Name: "vit_b_16", InChannels: 1, NumClasses: 10, ImageSize: 32,
		Mean: []float32{0.5}, Std: []float32{0.25}})
	if err != nil {
		t.Fatal(err)
	}
	defer vit.Close()
	if weights, _, err = trainer.Export(vit); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, weights, 0o644)
	if err := prepare("vit_b_16", 48); err != nil {
		t.Fatalf("a ViT's weights for 32 px at 48 px: %v", err)
	}
}
