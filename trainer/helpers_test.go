package trainer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/testfixture"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// testThreads is fixed so that every process of a test computes the same
// floating-point reductions.
const testThreads = 2

func newTrainer(t testing.TB, cacheDir string) *trainer.Trainer {
	t.Helper()
	tr, err := trainer.New("", "cpu", testThreads)
	if err != nil {
		t.Fatalf("load bridge (run `make shim`): %v", err)
	}
	tr.Data.CacheDir = cacheDir
	return tr
}

// helperJob is what a fresh helper process is asked to do.
type helperJob struct {
	Config      sweep.Config
	StoreDir    string
	CacheDir    string
	FastPaths   bool // bf16 autocast and channels-last
	StopAtEpoch int  // cancel once this 1-based epoch has completed StopAtStep steps
	StopAtStep  int
	// LoaderWorkers assemble batches (0: the trainer's default).
	LoaderWorkers int
}

// TestMain lets a test re-run this binary as a fresh process that trains
// from the latest checkpoint in a store: resume must not rely on anything
// left in memory.
func TestMain(m *testing.M) {
	if os.Getenv("RESOMAP_TEST_HELPER_OOM") != "" {
		if err := oomHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "oom helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if spec := os.Getenv("RESOMAP_TEST_HELPER"); spec != "" {
		if err := runHelper(spec); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(spec string) error {
	var job helperJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		return err
	}
	tr, err := trainer.New("", "cpu", testThreads)
	if err != nil {
		return err
	}
	tr.Data.CacheDir = job.CacheDir
	tr.MixedPrecision, tr.ChannelsLast = job.FastPaths, job.FastPaths
	if job.LoaderWorkers > 0 {
		tr.LoaderWorkers = job.LoaderWorkers
	}
	st, err := store.NewFile(job.StoreDir)
	if err != nil {
		return err
	}
	repo := checkpoint.Repo{Store: st}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := tr.Prepare(context.Background(), job.Config)
	if err != nil {
		return err
	}
	info, _ := sweep.LookupModel(cfg.Model)
	from, _, err := repo.LoadLatest(ctx, repo.Combo(info.Family, cfg.Model, cfg.Resolution))
	if err != nil {
		return err
	}
	_, err = tr.Train(ctx, cfg, from, trainer.RunOptions{
		OnProgress: func(p trainer.StepProgress) {
			if p.Epoch == job.StopAtEpoch && p.Step == job.StopAtStep {
				cancel()
			}
		},
		OnCheckpoint: func(ctx context.Context, c *checkpoint.Checkpoint) error {
			_, err := repo.Save(ctx, c)
			return err
		},
	})
	if job.StopAtEpoch > 0 {
		if err == nil {
			return fmt.Errorf("expected an interruption at epoch %d step %d", job.StopAtEpoch, job.StopAtStep)
		}
		if !errors.Is(err, trainer.ErrInterrupted) {
			return err
		}
		return nil
	}
	return err
}

// runFreshProcess runs job in a new process of this test binary.
func runFreshProcess(t *testing.T, job helperJob) {
	t.Helper()
	testfixture.Long(t, "runs helper processes")
	spec, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RESOMAP_TEST_HELPER="+string(spec))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func comboDir(root string, cfg sweep.Config) string {
	info, _ := sweep.LookupModel(cfg.Model)
	return filepath.Join(root, filepath.FromSlash(checkpoint.Combo{Family: info.Family, Model: cfg.Model, Resolution: cfg.Resolution}.Dir()))
}

// pythonTorch is Debian's python3 with torch, torchvision and numpy, which
// the parity tests compare against.
func pythonTorch(t *testing.T) string {
	t.Helper()
	testfixture.Long(t, "compares with PyTorch in Python")
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch, torchvision, numpy").CombinedOutput(); err != nil {
		t.Fatalf("needs Debian's python3-torch, python3-torchvision and python3-numpy (make deps): %v\n%s", err, out)
	}
	return py
}

// randomBatch is n random c×res×res images from rng, labelled i mod nc, or
// with labels drawn from rng after the images when randomLabels.
func randomBatch(rng *rand.Rand, n, c, res, nc int, randomLabels bool) dataset.Batch {
	b := dataset.Batch{Images: make([]byte, n*c*res*res), Labels: make([]int64, n), C: c, H: res, W: res}
	for i := range b.Images {
		b.Images[i] = byte(rng.IntN(256))
	}
	for i := range b.Labels {
		if randomLabels {
			b.Labels[i] = int64(rng.IntN(nc))
		} else {
			b.Labels[i] = int64(i % nc)
		}
	}
	return b
}

// photoFolder writes n small JPEG photos in two classes (a colour cast per
// class, noise per pixel) and returns the folder.
func photoFolder(t testing.TB, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	return testfixture.Photos{N: n, W: 40, H: 30, Classes: []string{"red", "blue"},
		Paint: func(img *image.RGBA, _, cls int) {
			for p := 0; p < len(img.Pix); p += 4 {
				img.Pix[p] = byte(rng.IntN(128) + 100*cls)
				img.Pix[p+1] = byte(rng.IntN(128))
				img.Pix[p+2] = byte(rng.IntN(128) + 100*(1-cls))
				img.Pix[p+3] = 255
			}
		}}.Write(t, t.TempDir())
}

// trainToEnd trains cfg and returns its last checkpoint.
func trainToEnd(t *testing.T, tr *trainer.Trainer, cfg sweep.Config) *checkpoint.Checkpoint {
	t.Helper()
	var last *checkpoint.Checkpoint
	if _, err := tr.Train(t.Context(), cfg, nil, trainer.RunOptions{OnCheckpoint: func(_ context.Context, c *checkpoint.Checkpoint) error {
		last = c
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	return last
}

// oneStepForParity is what the Python parity scripts compare: after one
// SGD step at lr on b, m's eval-mode logits on b and its export, then a
// training-mode loss sum on b with its generator seeded 11 (the dropout
// masks PyTorch draws after torch.manual_seed(11)).
func oneStepForParity(t *testing.T, m *torch.Model, b dataset.Batch, classes int, lr float64) (logits []float32, weights []byte, seededLoss float64) {
	t.Helper()
	if _, _, err := m.ForwardBackward(b, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Step(lr); err != nil {
		t.Fatal(err)
	}
	logits = make([]float32, b.N()*classes)
	if _, _, err := m.Evaluate(b, logits); err != nil {
		t.Fatal(err)
	}
	weights, _, err := trainer.Export(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Seed(11); err != nil {
		t.Fatal(err)
	}
	if seededLoss, _, err = m.ForwardBackward(b, 1, 0); err != nil {
		t.Fatal(err)
	}
	return logits, weights, seededLoss
}

// parityFiles writes an export, a batch's images and logits where the
// Python scripts read them.
func parityFiles(t *testing.T, weights, images []byte, logits []float32) (wp, xp, lp string) {
	t.Helper()
	dir := t.TempDir()
	wp, xp, lp = filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "x.bin"), filepath.Join(dir, "l.bin")
	for path, b := range map[string][]byte{wp: weights, xp: images, lp: unsafe.Slice((*byte)(unsafe.Pointer(&logits[0])), 4*len(logits))} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return wp, xp, lp
}

// labelList is labels as the Python scripts take them: "3,7,1".
func labelList(labels []int64) string {
	var out []string
	for _, l := range labels {
		out = append(out, strconv.FormatInt(l, 10))
	}
	return strings.Join(out, ",")
}
