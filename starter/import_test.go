package main

import (
	"bytes"
	"errors"
	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/pretrained"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
)

// treePy writes the Python tool's checkpoint tree with python3-torch:
// resnet18 at 32 px (its checkpoint dict), a model ResoMap has not, and a
// truncated file.
const treePy = `
import os, sys, torch, torchvision
root = sys.argv[1]
def save(family, model, res, obj):
    d = os.path.join(root, family, model, str(res)); os.makedirs(d, exist_ok=True)
    torch.save(obj, os.path.join(d, "best_model.pt"))
torch.manual_seed(0)
save("resnet", "resnet18", 32, {"model_state_dict": torchvision.models.resnet18(num_classes=10).state_dict(), "model": "resnet18",
    "resolution": 32, "epoch": 7, "val_loss": 0.5, "val_accuracy": 0.8125})
save("cnn", "alexnet", 64, {"model_state_dict": {"w": torch.zeros(2)}, "epoch": 1})
save("resnet", "resnet34", 64, {"model_state_dict": {"w": torch.zeros(2)}})
save("resnet", "resnet18", 64, {"model_state_dict": {"w": torch.zeros(2)}, "epoch": 3})
save("cnn", "smallcnn", 32, {"model_state_dict": {"w": torch.zeros(2)}})
save("vgg", "resnet50", 32, {"model_state_dict": {"w": torch.zeros(2)}})
p = os.path.join(root, "resnet", "resnet34", "64", "best_model.pt")
data = open(p, "rb").read(); open(p, "wb").write(data[: len(data) // 2])
`

// starter import lists a tree of the Python tool's checkpoints (model,
// resolution, epoch, validation accuracy), says which files a sweep would
// start from and why not the others, and prints the init line.
func TestImportListsThePythonToolsTree(t *testing.T) {
	testfixture.Long(t, "writes checkpoints with python3-torch")
	dir := t.TempDir()
	if out, err := exec.Command("/usr/bin/python3", "-c", treePy, dir).CombinedOutput(); err != nil {
		t.Fatalf("needs Debian's python3-torch and python3-torchvision (make deps): %v\n%s", err, out)
	}
	var buf bytes.Buffer
	if err := importTree(options{dir: dir}, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log(out)
	for _, want := range []string{
		"resnet18  32   7      0.8125   0.5000    122      starts from it",
		`alexnet   64   -      -        -         0        skips it: invalid sweep spec: unknown model "alexnet"`,
		"resnet34  64   -      -        -         0        refuses it: ",
		"resnet50  32   -      -        -         0        skips it: a sweep looks for resnet50 in resnet/, not vgg/",
		"models: [resnet18, smallcnn]\n  resolutions: [32, 64]\n  init: " + filepath.Join(dir, "{family}", "{model}", "{res}", "best_model.pt"),
		"would have no file to start from (they would fail): smallcnn@64",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if err := importTree(options{dir: t.TempDir()}, &buf); err == nil {
		t.Error("an empty folder: no error")
	}
	if err := importTree(options{}, &buf); !errors.Is(err, errUsage) {
		t.Errorf("no --dir: %v", err)
	}
}

// A sweep whose init weights on this machine are no state dict is refused
// before it starts, as a bad spec (exit 2), naming the file; a path that
// is not here (on the workers only) is left to them.
func TestStarterReadsLocalInitWeights(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "model.pth")
	if err := os.WriteFile(bad, []byte("PK\x03\x04 truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := options{sweep: "default", init: bad, set: map[string]bool{"init": true}}
	_, err := loadSpec(o)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "init.weights "+bad) {
		t.Fatalf("truncated local weights: %v (exit %d), want exit 2 naming the file", err, exitCode(err))
	}
	o.init = filepath.Join(dir, "elsewhere.pth")
	if _, err := loadSpec(o); err != nil {
		t.Fatalf("weights not on this machine: %v", err)
	}
}

// safetensorsOf writes a state dict with model's recorded layout (zeros),
// edited by edit, as a safetensors file.
func safetensorsOf(t *testing.T, model string, edit func([]checkpoint.Tensor) []checkpoint.Tensor) string {
	t.Helper()
	layout, ok := pretrained.Layout(model)
	if !ok {
		t.Fatalf("no layout of %s", model)
	}
	var ts []checkpoint.Tensor
	for _, l := range layout {
		n := map[string]int64{"F32": 4, "I64": 8}[l.DType]
		for _, d := range l.Shape {
			n *= d
		}
		ts = append(ts, checkpoint.Tensor{Name: l.Name, DType: l.DType, Shape: l.Shape, Data: make([]byte, n)})
	}
	b, err := checkpoint.EncodeSafetensors(edit(ts), nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), model+".safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Weights on this machine are checked against each model they are to
// start, without libtorch: another architecture's, or a layer misshapen,
// is refused before the sweep starts (exit 2) naming the first misfit and
// the model; weights that fit pass.
func TestStarterChecksLocalWeightsFitTheModel(t *testing.T) {
	o := options{sweep: "default", models: "smallcnn", set: map[string]bool{"init": true, "models": true}}
	o.init = safetensorsOf(t, "smallcnn", func(ts []checkpoint.Tensor) []checkpoint.Tensor { return ts })
	if _, err := loadSpec(o); err != nil {
		t.Fatalf("smallcnn's own layout: %v", err)
	}
	o.init = safetensorsOf(t, "smallcnn", func(ts []checkpoint.Tensor) []checkpoint.Tensor {
		return append(ts, checkpoint.Tensor{Name: "features.99.weight", DType: "F32", Shape: []int64{1}, Data: make([]byte, 4)})
	})
	_, err := loadSpec(o)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "init.weights "+o.init+" for smallcnn") ||
		!strings.Contains(err.Error(), "the weights hold features.99.weight, which smallcnn has not") {
		t.Fatalf("an extra layer: %v (exit %d)", err, exitCode(err))
	}
	o.init = safetensorsOf(t, "smallcnn", func(ts []checkpoint.Tensor) []checkpoint.Tensor { return ts[1:] })
	if _, err := loadSpec(o); exitCode(err) != 2 || !strings.Contains(err.Error(), "the weights have no ") {
		t.Fatalf("a layer missing: %v (exit %d)", err, exitCode(err))
	}
}
