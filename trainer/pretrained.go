package trainer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/internal/redact"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// ErrWeightsMismatch marks pretrained weights that do not fit the model:
// another architecture, missing or extra keys, wrong shapes.
var ErrWeightsMismatch = errkind.New(errkind.Invalid, "pretrained weights do not fit the model")

// LoadPretrained writes a state dict into m's weights and buffers, every
// key checked: each tensor of the model must be in weights with its type
// and shape, and weights must hold nothing else. Colour weights on grey
// data are one shape change made: the first convolution's kernels are
// summed over their three input channels, as timm's adapt_input_conv does
// (a grey image x seen as (x, x, x) gives the same response), a function
// of the weights and the data, both in the training's identity. A ViT's
// position embedding made for another image size is the other: resized
// to the model's grid as torchvision's interpolate_embeddings does (a
// function of the weights and the resolution, both in the identity). With
// a classifier (the last layer's state-dict prefix: sweep.Config.Classifier;
// "" keeps every layer), that layer keeps m's fresh initialisation (as
// torchvision initialises it) for the data's classes, and the weights' own
// classifier is left out. The first mismatch, in the model's order, is
// named.
func LoadPretrained(m *torch.Model, weights map[string]checkpoint.Tensor, classifier string) error {
	info, err := sweep.LookupModel(m.Spec().Name)
	if err != nil {
		return err
	}
	head := func(name string) bool { return classifier != "" && strings.HasPrefix(name, classifier) }
	used := map[string]bool{}
	for i, ti := range m.Tensors() {
		if strings.HasPrefix(ti.Name, optimPrefix) || head(ti.Name) {
			continue
		}
		t, ok := weights[ti.Name]
		if !ok {
			return fmt.Errorf("%w: the weights have no %s (are they %s's weights?)", ErrWeightsMismatch, ti.Name, info.Name)
		}
		if greyFromColour(ti, t) && isStem(info.Name, ti.Name, m.Spec().InChannels) {
			t = sumInputChannels(t)
		}
		if ti.Name == sweep.PositionEmbedding && t.DType == dtypeNames[ti.DType] && !slices.Equal(t.Shape, ti.Shape) {
			if err := m.WriteTensorResized(i, t.Shape, t.Data); err != nil {
				return fmt.Errorf("%w: %s is %s%v in the weights, %v in %s at %d px: %w", ErrWeightsMismatch, ti.Name, t.DType, t.Shape,
					ti.Shape, info.Name, m.Spec().ImageSize, err)
			}
			used[ti.Name] = true
			continue
		}
		if t.DType != dtypeNames[ti.DType] || !slices.Equal(t.Shape, ti.Shape) {
			return fmt.Errorf("%w: %s is %s%v in the weights, %s%v in %s%s", ErrWeightsMismatch, ti.Name, t.DType, t.Shape,
				dtypeNames[ti.DType], ti.Shape, info.Name, channelHint(ti, t, m.Spec().InChannels))
		}
		if err := m.WriteTensor(i, t.Data); err != nil {
			return fmt.Errorf("write %s: %w", ti.Name, err)
		}
		used[ti.Name] = true
	}
	if first, n := pretrained.Extra(weights, used, head); n > 0 {
		return fmt.Errorf("%w: %s", ErrWeightsMismatch, pretrained.ExtraMessage(first, n, info.Name))
	}
	return nil
}

// greyFromColour says whether w is a convolution's F32 kernels for three
// input channels where the model's tensor takes one, alike otherwise.
func greyFromColour(model torch.TensorInfo, w checkpoint.Tensor) bool {
	return w.DType == "F32" && dtypeNames[model.DType] == "F32" && len(model.Shape) == 4 && len(w.Shape) == 4 &&
		model.Shape[1] == 1 && w.Shape[1] == 3 && model.Shape[0] == w.Shape[0] && slices.Equal(model.Shape[2:], w.Shape[2:])
}

// isStem says whether key is the first convolution of a model built for
// grey images (channels 1): the one layer colour weights are adapted in
// (a depthwise convolution's kernels also take one channel each, and are
// never summed). A TorchScript model has no recorded layout: its one-
// channel kernels are taken as stems on grey data, as before.
func isStem(model, key string, channels int) bool {
	if channels != 1 {
		return false
	}
	layout, ok := pretrained.Layout(model)
	if !ok {
		return true
	}
	for _, t := range layout {
		if t.Name == key {
			return pretrained.IsStem(t)
		}
	}
	return false
}

// sumInputChannels sums a [out, 3, kh, kw] F32 kernel over its input
// channels into [out, 1, kh, kw] (in float32, in channel order, as
// PyTorch's sum over a dimension of three adds them).
func sumInputChannels(w checkpoint.Tensor) checkpoint.Tensor {
	out, in, k := int(w.Shape[0]), int(w.Shape[1]), int(w.Shape[2]*w.Shape[3])
	data := make([]byte, 4*out*k)
	f := func(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	for o := range out {
		for j := range k {
			var s float32
			for c := range in {
				s += f(w.Data, (o*in+c)*k+j)
			}
			binary.LittleEndian.PutUint32(data[4*(o*k+j):], math.Float32bits(s))
		}
	}
	return checkpoint.Tensor{Name: w.Name, DType: w.DType, Shape: []int64{w.Shape[0], 1, w.Shape[2], w.Shape[3]}, Data: data}
}

// channelHint explains a first convolution that differs only in its input
// channels: weights for colour images, data in grey (or the reverse).
func channelHint(model torch.TensorInfo, w checkpoint.Tensor, channels int) string {
	if len(model.Shape) == 4 && len(w.Shape) == 4 && model.Shape[0] == w.Shape[0] && model.Shape[1] != w.Shape[1] &&
		slices.Equal(model.Shape[2:], w.Shape[2:]) {
		return fmt.Sprintf(" (the data has %d channels, the weights were trained on %d)", channels, w.Shape[1])
	}
	return ""
}

// startFrom gives a fresh training its pretrained weights (cfg.Init): the
// weights Prepare named by content, fetched again (from the cache), with
// the classifier replaced for the data's classes and, when asked, the
// BatchNorm statistics reset so the data re-estimates them.
func (r *run) startFrom(ctx context.Context, init *sweep.Init) error {
	f, err := r.t.Weights.Fetch(ctx, init.Weights)
	if err != nil {
		return err
	}
	if f.SHA256 != init.SHA256 {
		return fmt.Errorf("%w: weights %s are %.12s… here, %.12s… when the training was prepared", ErrWeightsMismatch, redact.URL(init.Weights), f.SHA256, init.SHA256)
	}
	w, err := pretrained.Read(f.Path)
	if err != nil {
		return err
	}
	if err := LoadPretrained(r.m, w, r.cfg.Classifier()); err != nil {
		return fmt.Errorf("%s: %w", redact.URL(init.Weights), err)
	}
	if init.BatchNorm == sweep.BatchNormReestimate {
		return resetBatchNormStats(r.m)
	}
	return nil
}

// resetBatchNormStats sets every BatchNorm's running statistics to a fresh
// layer's (mean 0, variance 1, no batches seen).
func resetBatchNormStats(m *torch.Model) error {
	for i, ti := range m.Tensors() {
		var fill func(b []byte)
		switch {
		case strings.HasSuffix(ti.Name, ".running_mean"), strings.HasSuffix(ti.Name, ".num_batches_tracked"):
			fill = func(b []byte) { clear(b) }
		case strings.HasSuffix(ti.Name, ".running_var") && ti.DType == torch.F32:
			fill = func(b []byte) {
				for j := 0; j < len(b); j += 4 {
					binary.LittleEndian.PutUint32(b[j:], math.Float32bits(1))
				}
			}
		default:
			continue
		}
		b := make([]byte, ti.NBytes)
		fill(b)
		if err := m.WriteTensor(i, b); err != nil {
			return err
		}
	}
	return nil
}

// fineTuneEpoch sets the pretrained layers' learning-rate scale for the
// epoch about to train: 0 (frozen) in the first FreezeEpochs, else
// LRScale. It follows from the config and the epoch, so a resumed run
// scales as an uninterrupted one.
func (r *run) fineTuneEpoch() error {
	init := r.cfg.Init
	if init == nil {
		return nil
	}
	scale := init.LRScale
	if r.rec.EpochsDone < init.FreezeEpochs {
		scale = 0
	}
	return r.m.SetLRScale(r.cfg.Classifier(), scale)
}

// Layout is m's state dict as pretrained.CheckFits knows models: every
// weight and buffer but the optimiser's and the classifier's (prefix
// classifier), in the model's order.
func Layout(m *torch.Model, classifier string) []pretrained.Tensor {
	var out []pretrained.Tensor
	for _, ti := range m.Tensors() {
		if strings.HasPrefix(ti.Name, optimPrefix) || classifier != "" && strings.HasPrefix(ti.Name, classifier) {
			continue
		}
		out = append(out, pretrained.Tensor{Name: ti.Name, DType: dtypeNames[ti.DType], Shape: ti.Shape})
	}
	return out
}
