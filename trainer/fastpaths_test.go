package trainer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// The GPU fast paths (bf16 autocast, channels-last) run the same bridge code
// on CPU when asked for, so their plumbing is checked here: layout does not
// change results, autocast really computes in bf16, checkpoints stay float32
// NCHW and load across layouts, and training still learns.
func TestBF16AndChannelsLastPaths(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	const n, c, res, nc = 8, 3, 32, 10
	b := randomBatch(rand.New(rand.NewPCG(5, 6)), n, c, res, nc, false)
	for _, name := range []string{"smallcnn", "resnet18"} {
		t.Run(name, func(t *testing.T) {
			spec := torch.ModelSpec{Name: name, InChannels: c, NumClasses: nc, InitSeed: 11, Momentum: 0.9,
				Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}}
			newModel := func(amp, cl bool) *torch.Model {
				s := spec
				s.MixedPrecision, s.ChannelsLast = amp, cl
				m, err := tr.Lib.NewModel(s)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
				return m
			}
			plain, cl, amp := newModel(false, false), newModel(false, true), newModel(true, true)

			// Fresh models export the same bytes whatever their layout.
			pw, po := export(t, plain)
			for label, m := range map[string]*torch.Model{"channels-last": cl, "bf16+channels-last": amp} {
				w, o := export(t, m)
				if !bytes.Equal(w, pw) || !bytes.Equal(o, po) {
					t.Fatalf("%s: exported tensors differ from the plain model's", label)
				}
			}

			want := logits(t, plain, b, n*nc)
			scale := maxAbs(want)
			if d := maxDiff(want, logits(t, cl, b, n*nc)); d > 1e-4*math.Max(1, scale) {
				t.Errorf("channels-last changes logits by %g (scale %g)", d, scale)
			}
			d := maxDiff(want, logits(t, amp, b, n*nc))
			if d == 0 {
				t.Errorf("bf16 autocast gave exactly the fp32 logits: autocast is not on")
			}
			if d > 0.1*math.Max(1, scale) {
				t.Errorf("bf16 logits are %g away from fp32 (scale %g)", d, scale)
			}

			// One step: the channels-last model follows the plain one (later
			// steps would let rounding differences grow on this tiny batch).
			lr := 0.01
			for _, m := range []*torch.Model{plain, cl} {
				m.Seed(1)
				m.ZeroGrad()
				if _, _, err := m.ForwardBackward(b, 1, 0); err != nil {
					t.Fatal(err)
				}
				if err := m.Step(lr); err != nil {
					t.Fatal(err)
				}
			}
			start := pw
			pw, po = export(t, plain)
			cw, _ := export(t, cl)
			// A layout mix-up moves tensors by about a whole step; oneDNN's
			// NHWC backward kernels round differently, which BatchNorm's
			// cancellations magnify to about 1% of a step in resnet18's early
			// layers (different thread counts: 0.005%).
			if name, r := worstStepDisagreement(t, start, pw, cw); r > 0.05 {
				t.Errorf("after one step channels-last %s is %.2g of the step away from the plain model's", name, r)
			}
			// The bf16 model learns a repeated batch.
			var losses []float64
			for step := 0; step < 5; step++ {
				amp.Seed(uint64(step))
				amp.ZeroGrad()
				l, _, err := amp.ForwardBackward(b, 1, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := amp.Step(lr); err != nil {
					t.Fatal(err)
				}
				losses = append(losses, l/n)
			}
			if !(losses[4] < losses[0]) {
				t.Errorf("bf16+channels-last: loss did not fall on a repeated batch: %v", losses)
			}

			// A plain checkpoint loads into a channels-last model and reads
			// back unchanged.
			re := newModel(true, true)
			if err := trainer.Import(re, pw, po); err != nil {
				t.Fatal(err)
			}
			rw, ro := export(t, re)
			if !bytes.Equal(rw, pw) || !bytes.Equal(ro, po) {
				t.Errorf("checkpoint imported into a channels-last model does not export the same bytes")
			}
		})
	}
}

// UseFastGPUPaths turns the fast paths on only for CUDA devices.
func TestFastGPUPathsAreForCUDAOnly(t *testing.T) {
	for dev, want := range map[string]bool{"cpu": false, "cuda": true, "cuda:1": true} {
		tr := &trainer.Trainer{Device: dev}
		tr.UseFastGPUPaths(true)
		if tr.MixedPrecision != want || tr.ChannelsLast != want {
			t.Errorf("%s: bf16=%v channels-last=%v, want %v", dev, tr.MixedPrecision, tr.ChannelsLast, want)
		}
		tr.UseFastGPUPaths(false)
		if tr.MixedPrecision || tr.ChannelsLast {
			t.Errorf("%s: fast paths stay on when turned off", dev)
		}
	}
}

func export(t *testing.T, m *torch.Model) (model, optim []byte) {
	t.Helper()
	w, o, err := trainer.Export(m)
	if err != nil {
		t.Fatal(err)
	}
	return w, o
}

func logits(t *testing.T, m *torch.Model, b dataset.Batch, size int) []float32 {
	t.Helper()
	out := make([]float32, size)
	if _, _, err := m.Evaluate(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// tensorsF32 decodes the float32 tensors of a safetensors file by name.
func tensorsF32(t *testing.T, st []byte) map[string][]float32 {
	t.Helper()
	ts, _, err := checkpoint.DecodeSafetensors(st)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, x := range ts {
		if x.DType != "F32" {
			continue
		}
		v := make([]float32, len(x.Data)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:]))
		}
		out[x.Name] = v
	}
	return out
}

// worstStepDisagreement compares two models trained one step from the same
// start: for each tensor, the distance between them relative to the length
// of the step (L2 norms: single elements of a gradient that BatchNorm
// cancels out are rounding noise); the worst tensor is returned.
func worstStepDisagreement(t *testing.T, start, a, b []byte) (string, float64) {
	t.Helper()
	s, x, y := tensorsF32(t, start), tensorsF32(t, a), tensorsF32(t, b)
	worst, name := 0.0, ""
	for n, s0 := range s {
		if len(x[n]) != len(s0) || len(y[n]) != len(s0) {
			t.Fatalf("tensor %s missing or reshaped", n)
		}
		moved, apart := 0.0, 0.0
		for i := range s0 {
			moved += sq(float64(x[n][i] - s0[i]))
			apart += sq(float64(x[n][i] - y[n][i]))
		}
		if moved == 0 {
			continue
		}
		if r := math.Sqrt(apart / moved); r > worst {
			worst, name = r, n
		}
	}
	return name, worst
}

func sq(x float64) float64 { return x * x }

// Asking for a device this machine or libtorch lacks is a clear error; on a
// machine with a GPU the same request trains.
func TestDevicesThatAreNotThere(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	spec := torch.ModelSpec{Name: "smallcnn", InChannels: 1, NumClasses: 10, Momentum: 0.9,
		Mean: []float32{0.5}, Std: []float32{0.5}}
	build := func(dev string) error {
		s := spec
		s.Device = dev
		m, err := tr.Lib.NewModel(s)
		if err == nil {
			m.Close()
		}
		return err
	}
	for _, dev := range []string{"tpu", "cuda:", "cuda:-1", "cuda:01", "gpu0", "CPU"} {
		err := build(dev)
		if !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), "want cpu, cuda or cuda:N") {
			t.Errorf("device %q: %v, want an invalid-device error", dev, err)
		}
		if _, err := trainer.New("", dev, 1); !errors.Is(err, torch.ErrInvalid) {
			t.Errorf("trainer.New(%q): %v, want an invalid-device error", dev, err)
		}
	}
	n := tr.Lib.CUDADevices()
	beyond := fmt.Sprintf("cuda:%d", n)
	if err := build(beyond); !errors.Is(err, torch.ErrInvalid) {
		t.Errorf("%s with %d CUDA devices: %v, want an invalid-argument error", beyond, n, err)
	}
	if n == 0 {
		err := build("cuda")
		if !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), "sees no CUDA device") {
			t.Errorf("cuda without a GPU: %v", err)
		}
		if _, err := trainer.New("", "cuda", 1); err == nil || !strings.Contains(err.Error(), "sees no CUDA device") {
			t.Errorf("trainer.New(cuda) without a GPU: %v", err)
		}
		return
	}
	if err := build("cuda"); err != nil {
		t.Errorf("cuda with %d devices: %v", n, err)
	}
}
