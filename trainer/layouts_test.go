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
