package trainer_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// scriptModel writes testdata/script_model.py's Net as TorchScript.
func scriptModel(t *testing.T, py string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "net.pt")
	if out, err := exec.Command(py, "testdata/script_model.py", "save", path).CombinedOutput(); err != nil {
		t.Fatalf("script_model.py save: %v\n%s", err, out)
	}
	return path
}

// A TorchScript model trains like a built-in one: its own names, an export
// that loads into its Python class with strict=True and gives its logits,
// dropout masks drawn from the model's generator (PyTorch's after
// torch.manual_seed), a wrong class count and a file that is no
// TorchScript refused in one line.
func TestTorchScriptModelMatchesItsPythonClass(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	path := scriptModel(t, py)
	const n, res = 4, 16
	spec := torch.ModelSpec{Name: "script:net", ScriptPath: path, InChannels: 1, NumClasses: 10, Momentum: 0.9,
		Mean: []float32{0.5}, Std: []float32{0.25}}
	m, err := tr.Lib.NewModel(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var names []string
	for _, ti := range m.Tensors() {
		names = append(names, ti.Name)
	}
	if got := strings.Join(names[:3], " "); got != "features.0.weight features.0.bias features.1.weight" {
		t.Fatalf("tensors %v: want the module's own state-dict names", names)
	}
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), n, 1, res, 10, true)
	logits, weights, loss := oneStepForParity(t, m, b, 10, 0.05)
	wp, xp, lp := parityFiles(t, weights, b.Images, logits)
	dir := t.TempDir()
	out, err := exec.Command(py, "testdata/script_model.py", "parity", wp, xp, lp, strconv.Itoa(n), strconv.Itoa(res), "11",
		labelList(b.Labels), strconv.FormatFloat(loss, 'g', -1, 64)).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the Python class disagrees: %v", err)
	}

	five := spec
	five.NumClasses = 5
	m5, err := tr.Lib.NewModel(five)
	if err != nil {
		t.Fatal(err)
	}
	defer m5.Close()
	five5 := randomBatch(rand.New(rand.NewPCG(1, 2)), n, 1, res, 5, true)
	if _, _, err := m5.ForwardBackward(five5, 1, 0); !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), "5 classes") {
		t.Fatalf("10 outputs for 5 classes: %v, want ErrInvalid naming the classes", err)
	}
	// Its code failing (a size it refuses) is its error, not retried; tied
	// weights (stepped twice) and a buffer type ResoMap does not store are
	// refused when the model is built.
	picky := filepath.Join(dir, "picky.pt")
	if out, err := exec.Command(py, "testdata/script_model.py", "save-picky", picky).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pspec := spec
	pspec.ScriptPath = picky
	mp, err := tr.Lib.NewModel(pspec)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	if _, _, err := mp.ForwardBackward(randomBatch(rand.New(rand.NewPCG(1, 2)), n, 1, 24, 10, true), 1, 0); !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), "16 px only") {
		t.Fatalf("its code raising: %v, want ErrInvalid with its message", err)
	}
	for kind, want := range map[string]string{"save-tied": "tied weights", "save-flagged": "a type ResoMap does not store"} {
		p := filepath.Join(dir, kind+".pt")
		if out, err := exec.Command(py, "testdata/script_model.py", kind, p).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		s := spec
		s.ScriptPath = p
		if _, err := tr.Lib.NewModel(s); !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", kind, err, want)
		}
	}
	bad := filepath.Join(dir, "bad.pt")
	os.WriteFile(bad, []byte("not a zip"), 0o644)
	spec.ScriptPath = bad
	if _, err := tr.Lib.NewModel(spec); !errors.Is(err, torch.ErrInvalid) || !strings.Contains(err.Error(), "TorchScript") {
		t.Fatalf("a file that is no TorchScript: %v", err)
	}
}

// A sweep's TorchScript model (script:NAME with its file) is prepared (its
// content names the training), trains, and resumes in fresh processes bit
// for bit.
func TestTorchScriptModelTrainsAndResumesExactly(t *testing.T) {
	py := pythonTorch(t)
	path := scriptModel(t, py)
	cfg := resumeConfig()
	cfg.Model, cfg.Script = "script:net", &sweep.Script{File: path}
	tr := newTrainer(t, t.TempDir())
	tr.Weights.CacheDir = t.TempDir()
	prepared, err := tr.Prepare(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(prepared.Script.SHA256) != 64 || prepared.Hash() == cfg.Hash() {
		t.Fatalf("prepared script %+v: want its SHA-256 stamped into the training's name", prepared.Script)
	}
	moved := prepared
	moved.Script = &sweep.Script{File: "/elsewhere/net.pt", SHA256: prepared.Script.SHA256}
	if moved.Hash() != prepared.Hash() {
		t.Fatal("the script's place changed the training's name")
	}
	testExactResume(t, cfg, false)
}

// A scripted torchvision model (shufflenet_v2_x1_0, as a user scripts
// one) trains on photos, resumes in fresh processes bit for bit, and its
// checkpoint evaluates at two test resolutions.
func TestScriptedTorchvisionModelTrainsResumesAndEvaluates(t *testing.T) {
	py := pythonTorch(t)
	path := filepath.Join(t.TempDir(), "shufflenet.pt")
	if out, err := exec.Command(py, "testdata/script_model.py", "save-torchvision", path, "shufflenet_v2_x1_0", "2").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cfg := resumeConfig()
	cfg.Model, cfg.Script, cfg.Resolution = "script:shufflenet", &sweep.Script{File: path}, 32
	cfg.Data = photoFolder(t, 720)
	testExactResume(t, cfg, false)

	tr := newTrainer(t, t.TempDir())
	tr.Weights.CacheDir = t.TempDir()
	cfg.Epochs = 1
	last := trainToEnd(t, tr, cfg)
	var sizes []int
	err := tr.EvaluateAt(t.Context(), cfg, last.Record, last.Model, []int{32, 48}, last.Record.MicroBatch,
		func(ev trainer.Evaluation) error {
			if !(ev.Loss > 0) || ev.Images == 0 {
				return fmt.Errorf("at %d px: %+v", ev.Resolution, ev)
			}
			sizes = append(sizes, ev.Resolution)
			return nil
		}, nil)
	if err != nil || fmt.Sprint(sizes) != "[32 48]" {
		t.Fatalf("evaluated at %v: %v", sizes, err)
	}
}
