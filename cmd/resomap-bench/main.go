// Command resomap-bench prints training throughput of the Go trainer next to
// the same step loop written in C++ against the bridge (no Go in that
// process), so the Go + purego overhead is visible. With --device cuda it
// prints the GPU rows in the JSON form of bench/torch_reference.py.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

type row struct {
	Model        string  `json:"model"`
	Res          int     `json:"res"`
	BS           int     `json:"bs"`
	BF16         bool    `json:"bf16"`
	ChannelsLast bool    `json:"channels_last"`
	ImgS         float64 `json:"img_s"`
}

// goSteps runs the step loop through the Go API on one synthetic batch and
// returns images/s.
func goSteps(lib *torch.Lib, model string, res, bs, steps, warm int, device string, amp bool) (float64, error) {
	return goStepsFed(lib, model, res, bs, steps, warm, device, amp, nil)
}

// goStepsFed is goSteps with batches from next (nil: one synthetic batch
// over and over).
func goStepsFed(lib *torch.Lib, model string, res, bs, steps, warm int, device string, amp bool, next func() dataset.Batch) (float64, error) {
	// As in Trainer.Train: one OS thread drives libtorch throughout.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m, err := lib.NewModel(torch.ModelSpec{Name: model, InChannels: 3, NumClasses: 10, Device: device, InitSeed: 1,
		Momentum: 0.9, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}, MixedPrecision: amp, ChannelsLast: amp, ImageSize: res})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	b := dataset.Batch{Images: make([]byte, bs*3*res*res), Labels: make([]int64, bs), C: 3, H: res, W: res}
	for i := range b.Images {
		b.Images[i] = byte(rng.IntN(256))
	}
	for i := range b.Labels {
		b.Labels[i] = int64(i % 10)
	}
	// Trainer.Train's loop: the next batch is staged before the step's
	// figures are read.
	if err := m.Stage(b); err != nil {
		return 0, err
	}
	var mets []torch.MicroBatchMetrics
	step := func() error {
		_ = m.ZeroGrad()
		if err := m.ForwardBackwardStaged(0, b.N(), 1, 0); err != nil {
			return err
		}
		if err := m.Step(0.01); err != nil {
			return err
		}
		if next != nil {
			b = next()
		}
		if err := m.Stage(b); err != nil {
			return err
		}
		var err error
		mets, err = m.TakeMetrics(mets[:0])
		return err
	}
	for i := 0; i < warm; i++ {
		if err := step(); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(); err != nil {
			return 0, err
		}
	}
	// Taking the figures in each step waits for the device, so wall time
	// covers all queued work.
	return float64(bs*steps) / time.Since(t0).Seconds(), nil
}

func cppSteps(bin, model string, res, bs, steps, warm, threads int, device string) (float64, error) {
	out, err := exec.Command(bin, model, strconv.Itoa(res), strconv.Itoa(bs), strconv.Itoa(steps), strconv.Itoa(warm), strconv.Itoa(threads), device).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", bin, err, out)
	}
	var r row
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("%s printed %q", bin, out)
	}
	return r.ImgS, nil
}

func goFresh(model string, res, bs, steps, threads int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	out, err := exec.Command(self, "--threads", strconv.Itoa(threads), "--one", fmt.Sprintf("%s,%d,%d,%d", model, res, bs, steps)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func spread(v []float64) string {
	sort.Float64s(v)
	return fmt.Sprintf("%.0f..%.0f", v[0], v[len(v)-1])
}

func main() {
	cpp := flag.String("cpp", "build/resomap-bench-cpp", "C++ step-loop binary")
	device := flag.String("device", "cpu", "cpu or cuda")
	threads := flag.Int("threads", 2, "libtorch threads (CPU)")
	repeats := flag.Int("repeats", 5, "interleaved runs of each loop; the median is printed")
	out := flag.String("json", "", "GPU mode: write the rows to this JSON file")
	one := flag.String("one", "", "internal: run one Go measurement MODEL,RES,BATCH,STEPS in this fresh process")
	loader := flag.String("loader", "", "GPU mode: also train resnet18 at 224 from this image folder's cache (ImageNet recipe) and compare with synthetic data")
	cacheDir := flag.String("data-cache", "", "data cache for --loader")
	loaderBatch := flag.Int("loader-batch", 256, "batch size for --loader")
	loaderSteps := flag.Int("loader-steps", 30, "timed steps for --loader")
	epochs := flag.Int("epochs", 0, "train resnet18 at 224 for this many epochs of --data through the real activities and print each epoch's time split")
	data := flag.String("data", "", "data for --epochs (an image folder or IDX folder)")
	batch := flag.Int("batch", 256, "batch size for --epochs")
	limit := flag.Int("train-limit", 0, "first N training (and validation) images for --epochs (0 = all)")
	jobSpec := flag.String("job", "", "train MODEL,RES,EPOCHS,TRAIN,SEED[,VAL]: the Fashion-MNIST job of bench/torch_train_reference.py, through the real activities; prints one JSON line")
	compare := flag.String("compare", "", "print the --job runs and bench/torch_train_reference.py runs in this JSON-lines file side by side")
	listNew := flag.Bool("list-new-models", false, "print the registry's models of the families since ResNet (make bench-train's one-epoch rows), one a line")
	flag.Parse()
	if *listNew {
		for _, name := range newModels() {
			fmt.Println(name)
		}
		return
	}
	if *compare != "" {
		if err := compareJobs(*compare); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	lib, err := torch.Open("")
	if err == nil {
		err = lib.SetThreads(*threads)
	}
	switch {
	case err != nil:
	case *jobSpec != "":
		err = fashionJobFlag(*jobSpec, *cacheDir, *threads)
	case *epochs > 0:
		err = epochSplit(*device, *data, *cacheDir, *epochs, *batch, *limit)
	case *loader != "":
		err = loaderVsSynthetic(lib, *loader, *cacheDir, *device, *loaderBatch, *loaderSteps)
	case strings.HasPrefix(*device, "cuda"):
		gpu(lib, *device, *out)
	case *one != "":
		err = measureOne(lib, *one)
	default:
		err = cpuTable(lib, *cpp, *threads, *repeats)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// newModels are the registry's models of the families added since ResNet
// (issue 33's), in the registry's order.
func newModels() []string {
	var names []string
	for _, info := range sweep.Models() {
		if !slices.Contains([]string{"cnn", "vgg", "resnet"}, info.Family) {
			names = append(names, info.Name)
		}
	}
	return names
}

// measureOne runs one Go measurement, MODEL,RES,BATCH,STEPS, and prints
// its images/s: the parent runs each in a fresh process.
func measureOne(lib *torch.Lib, spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		return fmt.Errorf("--one %q: want MODEL,RES,BATCH,STEPS", spec)
	}
	res, _ := strconv.Atoi(f[1])
	bs, _ := strconv.Atoi(f[2])
	steps, _ := strconv.Atoi(f[3])
	v, err := goSteps(lib, f[0], res, bs, steps, 2, "cpu", false)
	if err != nil {
		return err
	}
	fmt.Println(v)
	return nil
}

// cpuTable prints the Go loop next to the C++ one, then the checkpoint share.
func cpuTable(lib *torch.Lib, cpp string, threads, repeats int) error {
	fmt.Printf("CPU training throughput, libtorch %s, %d threads, median of %d interleaved runs, each in a fresh process\n", lib.TorchVersion(), lib.Threads(), repeats)
	fmt.Printf("%-9s %5s %5s %12s %12s %9s\n", "model", "res", "batch", "Go img/s", "C++ img/s", "Go vs C++")
	cases := []struct {
		model          string
		res, bs, steps int
	}{{"smallcnn", 32, 64, 80}, {"smallcnn", 64, 64, 30}, {"smallcnn", 128, 32, 12}, {"resnet18", 32, 32, 30}, {"resnet18", 64, 32, 12}}
	// The bridge's own cost: one purego call into libtorch's C ABI.
	const calls = 200000
	t0 := time.Now()
	for i := 0; i < calls; i++ {
		lib.Threads()
	}
	perCall := time.Since(t0) / calls
	fmt.Printf("bridge call overhead: %v per call; a training step makes 5 calls (zero grad, forward+backward, optimiser step, stage the next batch, take the figures)\n", perCall)
	var resnet32 float64
	for _, c := range cases {
		var g, p []float64
		for i := 0; i < repeats; i++ {
			// Each measurement runs in a fresh process, as the C++ one does.
			gv, err := goFresh(c.model, c.res, c.bs, c.steps, threads)
			if err != nil {
				return err
			}
			pv, err := cppSteps(cpp, c.model, c.res, c.bs, c.steps, 2, threads, "cpu")
			if err != nil {
				return err
			}
			g, p = append(g, gv), append(p, pv)
		}
		gm, pm := median(g), median(p)
		if c.model == "resnet18" && c.res == 32 {
			resnet32 = gm
		}
		stepTime := time.Duration(float64(c.bs) / gm * float64(time.Second))
		fmt.Printf("%-9s %5d %5d %12.1f %12.1f %+8.1f%%   (runs: Go %s, C++ %s; bridge calls = %.4f%% of a step)\n", c.model, c.res, c.bs, gm, pm, 100*(gm-pm)/pm,
			spread(g), spread(p), 100*3*float64(perCall)/float64(stepTime))
	}
	return checkpointShare(lib, resnet32)
}

// checkpointShare times saving and verifying a resnet18 checkpoint (weights
// and SGD momentum) to a local directory and to a local S3 server, as a share
// of one Fashion-MNIST epoch of resnet18 at 32 px on this machine.
func checkpointShare(lib *torch.Lib, imgPerSec float64) error {
	m, err := lib.NewModel(torch.ModelSpec{Name: "resnet18", InChannels: 3, NumClasses: 10, Momentum: 0.9,
		Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "resomap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stores := map[string]store.Store{}
	if fs, err := store.NewFile(filepath.Join(dir, "file")); err == nil {
		stores["file"] = fs
	}
	if srv, err := s3test.Launch(filepath.Join(dir, "s3")); err == nil {
		defer srv.Stop()
		for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey,
			"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": "http://" + srv.Addr, "RESOMAP_S3_PATH_STYLE": "true"} {
			os.Setenv(k, v)
		}
		os.MkdirAll(filepath.Join(dir, "s3", "bench"), 0o755) // versitygw posix: a bucket is a folder
		if s3, err := store.Open(ctx, "s3://bench/ckpt"); err == nil {
			stores["s3"] = s3
		} else {
			fmt.Println("S3 store unavailable:", err)
		}
	} else {
		fmt.Println("S3 server unavailable:", err)
	}
	epoch := 60000 / imgPerSec
	for _, name := range []string{"file", "s3"} {
		st, ok := stores[name]
		if !ok {
			continue
		}
		t0 := time.Now()
		ms, os_, err := trainer.Export(m)
		if err != nil {
			return err
		}
		c := &checkpoint.Checkpoint{Record: checkpoint.Record{Kind: checkpoint.KindMid, Model: "resnet18", Family: "resnet",
			Resolution: 32, StepInEpoch: 1}, Model: ms, Optim: os_}
		c.Seal()
		repo := checkpoint.Repo{Store: st}
		key, err := repo.Save(ctx, c)
		if err != nil {
			return err
		}
		if _, err := repo.Load(ctx, key); err != nil {
			return err
		}
		d := time.Since(t0).Seconds()
		fmt.Printf("resnet18 checkpoint (%.0f MB) export+save+verify to %-4s: %.2f s = %.2f%% of one Fashion-MNIST epoch at 32 px (%.0f s at %.0f img/s)\n",
			float64(len(ms)+len(os_))/1e6, name, d, 100*d/epoch, epoch, imgPerSec)
	}
	return nil
}

// gpu prints rows comparable with shared/bench/pytorch_anchor.py.
// gpuCases are bench/torch_reference.py's CASES: resnet18 and vgg11 at 224
// (batch 256) and 512 px (batch 64), and one model of each family since
// at 224 (batch 128).
func gpuCases() []row {
	var out []row
	for _, name := range []string{"resnet18", "vgg11"} {
		out = append(out, row{Model: name, Res: 224, BS: 256}, row{Model: name, Res: 512, BS: 64})
	}
	for _, name := range []string{"mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "vit_b_16"} {
		out = append(out, row{Model: name, Res: 224, BS: 128})
	}
	return out
}

func gpu(lib *torch.Lib, device, out string) {
	var rows []row
	for _, c := range gpuCases() {
		for _, amp := range []bool{false, true} {
			v, err := goSteps(lib, c.Model, c.Res, c.BS, 12, 4, device, amp)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			r := row{Model: c.Model, Res: c.Res, BS: c.BS, BF16: amp, ChannelsLast: amp, ImgS: float64(int(v*10)) / 10}
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
			rows = append(rows, r)
		}
	}
	if out != "" {
		b, _ := json.MarshalIndent(rows, "", " ")
		os.WriteFile(out, b, 0o644)
	}
}

// fashionJobFlag runs --job MODEL,RES,EPOCHS,TRAIN,SEED[,VAL].
func fashionJobFlag(spec, cacheDir string, threads int) error {
	f := strings.Split(spec, ",")
	if len(f) != 5 && len(f) != 6 {
		return fmt.Errorf("--job %q: want MODEL,RES,EPOCHS,TRAIN,SEED[,VAL]", spec)
	}
	n := []int{0, 0, 0, 0, 2000}
	for i, s := range f[1:] {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("--job %q: %q is not a positive number", spec, s)
		}
		n[i] = v
	}
	j := fashionJob(f[0], n[0], n[1], n[2], uint64(n[3]), cacheDir, threads)
	j.spec.ValLimit = n[4]
	return runFashionJob(j)
}
