package pretrained

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
)

// writeWithTorch runs a Python snippet that saves files into dir with
// Debian's python3-torch, where sd is a small model's state dict and model
// the model.
func writeWithTorch(t *testing.T, dir, snippet string) {
	t.Helper()
	testfixture.Long(t, "writes weights with PyTorch in Python")
	script := `import torch, os, sys
os.chdir(sys.argv[1])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
sd = model.state_dict()
` + snippet
	cmd := exec.Command("/usr/bin/python3", "-c", script, dir)
	cmd.Dir = dir // not the repository root, whose torch/ folder would shadow the module
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("needs Debian's python3-torch (make deps): %v\n%s", err, out)
	}
}

// Weights in the forms people have them read as the model's state dict:
// the Python tool's checkpoint dict, Lightning's {'state_dict'} with its
// "model." prefix, an EMA dict; a dict without tensors, a whole pickled
// model and a truncated file are refused in one line that says what is
// wrong.
func TestWeightsInEveryCommonForm(t *testing.T) {
	dir := t.TempDir()
	writeWithTorch(t, dir, `
torch.save({'model_state_dict': sd, 'model': 'smallcnn', 'resolution': 224, 'epoch': 3, 'val_loss': 0.5, 'val_accuracy': 0.9}, 'tool.pt')
torch.save({'state_dict': {'model.' + k: v for k, v in sd.items()}, 'epoch': 1, 'global_step': 10}, 'lightning.ckpt')
torch.save({'ema': sd}, 'ema.pth')
torch.save({'state_dict': sd, 'best_acc1': torch.tensor(71.5), 'epoch': 90, 'arch': 'x'}, 'examples.pth.tar')
torch.save({'state_dict': {'model': sd}}, 'nested.pth')
torch.save({'epoch': 1, 'note': 'no weights'}, 'empty.pth')
torch.save(model, 'whole.pth')
torch.save(sd, 'plain.pth')
torch.save(sd, 'legacy.pth', _use_new_zipfile_serialization=False)
torch.save({'model_state_dict': sd, 'epoch': 3}, 'legacy-tool.pt', _use_new_zipfile_serialization=False)
`)
	want := []string{"0.bias", "0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"}
	for _, f := range []string{"plain.pth", "tool.pt", "lightning.ckpt", "ema.pth", "examples.pth.tar", "nested.pth", "legacy.pth", "legacy-tool.pt"} {
		ts, err := Read(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		var names []string
		for n := range ts {
			names = append(names, n)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("%s: tensors %v, want %v", f, names, want)
		}
	}
	zipped, err1 := Read(filepath.Join(dir, "plain.pth"))
	legacyRead, err2 := Read(filepath.Join(dir, "legacy.pth"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for name, z := range zipped {
		if l := legacyRead[name]; !bytes.Equal(l.Data, z.Data) || !slices.Equal(l.Shape, z.Shape) || l.DType != z.DType {
			t.Errorf("%s: the legacy file reads %s %v, the zip one %s %v", name, l.DType, l.Shape, z.DType, z.Shape)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "plain.pth"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pth")
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile(filepath.Join(dir, "legacy.pth"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "legacy-truncated.pth"), legacy[:len(legacy)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	for f, says := range map[string]string{
		"empty.pth":            "it holds epoch, note",
		"whole.pth":            "state_dict()",
		"truncated.pth":        "truncated",
		"legacy-truncated.pth": "truncated",
	} {
		_, err := Read(filepath.Join(dir, f))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line of ErrFormat saying %q", f, err, says)
		}
		t.Logf("%s: %v", f, err)
	}
}
