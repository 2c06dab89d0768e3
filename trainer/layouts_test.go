package trainer_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// The layouts the starter checks weights against (pretrained.CheckFits,
// no libtorch there) are the bridge's, model by model, both ways.
// RESOMAP_UPDATE_LAYOUTS=1 writes them anew from the bridge.
func TestRecordedLayoutsAreTheBridges(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	bridge := map[string][]pretrained.Tensor{}
	for _, info := range sweep.Models() {
		res := 32
		if info.Patch > 0 {
			res = 224 // a ViT's position embedding for the size its weights have
		}
		m, err := tr.Lib.NewModel(torch.ModelSpec{Name: info.Name, InChannels: 3, NumClasses: 10, InitSeed: 1, ImageSize: res,
			Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
		if err != nil {
			t.Fatal(err)
		}
		bridge[info.Name] = trainer.Layout(m, info.Classifier)
		m.Close()
	}
	if os.Getenv("RESOMAP_UPDATE_LAYOUTS") != "" {
		b, err := json.Marshal(bridge)
		if err != nil {
			t.Fatal(err)
		}
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		if err := os.WriteFile(filepath.Join("..", pretrained.LayoutsFile), z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d bytes (%d as JSON); rebuild to embed it", pretrained.LayoutsFile, z.Len(), len(b))
		return
	}
	var registry []string
	for name, want := range bridge {
		registry = append(registry, name)
		got, ok := pretrained.Layout(name)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the recorded layout (%d tensors) is not the bridge's (%d): run this test with RESOMAP_UPDATE_LAYOUTS=1", name, len(got), len(want))
		}
	}
	slices.Sort(registry)
	if recorded := pretrained.LayoutModels(); !slices.Equal(recorded, registry) {
		t.Errorf("layouts are recorded for %v, the registry has %v", recorded, registry)
	}
}

// The starter's check (pretrained.CheckFits, no libtorch) and the worker's
// load (trainer.WeightsFit) agree on the same weights: the starter accepts
// exactly what the worker accepts on colour or grey data (which the
// starter cannot see), edit by edit, model by model.
func TestStarterAndLoaderAgree(t *testing.T) {
	tr := newTrainer(t, t.TempDir())
	type edit struct {
		name string
		do   func(w map[string]checkpoint.Tensor, stem, depthwise, head string)
	}
	tensor := func(dtype string, shape ...int64) checkpoint.Tensor {
		n := map[string]int64{"F32": 4, "F16": 2, "I64": 8}[dtype]
		for _, d := range shape {
			n *= d
		}
		return checkpoint.Tensor{DType: dtype, Shape: shape, Data: make([]byte, n)}
	}
	reshaped := func(w map[string]checkpoint.Tensor, key string, change func([]int64)) {
		shape := slices.Clone(w[key].Shape)
		change(shape)
		w[key] = tensor(w[key].DType, shape...)
	}
	edits := []edit{
		{"as built", func(map[string]checkpoint.Tensor, string, string, string) {}},
		{"ImageNet's classifier", func(w map[string]checkpoint.Tensor, _, _, head string) {
			w[head+"weight"], w[head+"bias"] = tensor("F32", 1000, 8), tensor("F32", 1000)
		}},
		{"a grey stem", func(w map[string]checkpoint.Tensor, stem, _, _ string) {
			reshaped(w, stem, func(s []int64) { s[1] = 1 })
		}},
		{"a two-channel stem", func(w map[string]checkpoint.Tensor, stem, _, _ string) {
			reshaped(w, stem, func(s []int64) { s[1] = 2 })
		}},
		{"a half-precision stem", func(w map[string]checkpoint.Tensor, stem, _, _ string) { w[stem] = tensor("F16", w[stem].Shape...) }},
		{"a stem with other kernels", func(w map[string]checkpoint.Tensor, stem, _, _ string) { reshaped(w, stem, func(s []int64) { s[2]++ }) }},
		{"a depthwise kernel for colour", func(w map[string]checkpoint.Tensor, _, dw, _ string) {
			if dw != "" {
				reshaped(w, dw, func(s []int64) { s[1] = 3 })
			} else {
				w["extra.weight"] = tensor("F32", 1)
			}
		}},
		{"a key missing", func(w map[string]checkpoint.Tensor, stem, _, _ string) { delete(w, stem) }},
		{"a key too many", func(w map[string]checkpoint.Tensor, _, _, _ string) { w["extra.weight"] = tensor("F32", 1) }},
		{"a 384-px position embedding", func(w map[string]checkpoint.Tensor, _, _, _ string) {
			if _, ok := w[sweep.PositionEmbedding]; ok {
				w[sweep.PositionEmbedding] = tensor("F32", 1, 577, 768)
			}
		}},
		{"a position embedding of another width", func(w map[string]checkpoint.Tensor, _, _, _ string) {
			if _, ok := w[sweep.PositionEmbedding]; ok {
				w[sweep.PositionEmbedding] = tensor("F32", 1, 197, 512)
			} else {
				w["extra.weight"] = tensor("F32", 1)
			}
		}},
	}
	for _, model := range []string{"resnet18", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16"} {
		info, _ := sweep.LookupModel(model)
		layout, _ := pretrained.Layout(model)
		var stem, depthwise string
		for _, l := range layout {
			if pretrained.IsStem(l) && stem == "" {
				stem = l.Name
			}
			if len(l.Shape) == 4 && l.Shape[1] == 1 && l.Shape[2] > 1 && depthwise == "" {
				depthwise = l.Name
			}
		}
		res := 32
		if info.Patch > 0 {
			res = 224
		}
		for _, e := range edits {
			w := map[string]checkpoint.Tensor{}
			for _, l := range layout {
				w[l.Name] = tensor(l.DType, l.Shape...)
			}
			e.do(w, stem, depthwise, info.Classifier)
			cfg := sweep.Config{Model: model, Resolution: res}
			loader := map[int]error{}
			for _, channels := range []int{3, 1} {
				loader[channels] = trainer.WeightsFit(tr.Lib, cfg, channels, "", w)
			}
			starter := pretrained.CheckFits(model, info.Classifier, w)
			if (starter == nil) != (loader[3] == nil || loader[1] == nil) {
				t.Errorf("%s, %s: the starter says %v; the worker on colour data %v, on grey data %v", model, e.name, starter, loader[3], loader[1])
			}
		}
	}
}
