// Package trainer is ResoMap's training loop: it opens a data set, builds a
// model through the libtorch binding (package torch), trains it from any
// (epoch, step) and hands out checkpoints. It stops at a step boundary, with
// a checkpoint, when its context ends.
package trainer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/dataset/turbojpeg"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/internal/gpustat"
	"github.com/resomap/resomap/internal/redact"
	"github.com/resomap/resomap/internal/seed"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
)

// Version is ResoMap's version, stamped into checkpoints.
const Version = "0.1.0"

// ErrInterrupted is returned when the context ended mid-training; the
// checkpoint of the step reached was handed to OnCheckpoint first.
var ErrInterrupted = errors.New("training interrupted")

// Trainer trains models through the libtorch bridge. It holds the process's
// resources (library, device, data cache); Train may be called repeatedly.
type Trainer struct {
	Lib            *torch.Lib
	Device         string // "cpu" (default), "cuda", "cuda:N"
	MixedPrecision bool   // bf16 autocast; see UseFastGPUPaths
	ChannelsLast   bool   // channels-last memory format; see UseFastGPUPaths
	Data           dataset.Options
	// LoaderWorkers assemble training batches in parallel (see New).
	LoaderWorkers int
	// Weights finds pretrained weights (fine-tuning), downloading into its
	// cache.
	Weights pretrained.Fetcher
	// GPUStats reads the host's GPUs for each epoch's record (MLflow's GPU
	// system metrics); nil on a CPU device or where NVML is not there.
	GPUStats *gpustat.NVML
	Logger   *slog.Logger
	hashes   dataset.HashMemo // data set content hashes, per process
	// fitting memoises weights that fit a model (checkWeights), by
	// weightsFit's key.
	fitting   sync.Map
	fittingMu sync.Mutex
}

// checkWeights reads fetched weights and loads them into a fresh model of
// cfg's architecture for the data's channels, as the first epoch will: a
// file that is no state dict (or a hostile one), or weights of another
// architecture, fail Prepare, not every first epoch. Once per weights,
// model, channels and (for a ViT's position embedding) resolution. script
// is the TorchScript model's pinned file ("" for a built-in model). Its
// errors say init.weights and name the weights once: the reader names the
// file it read, which is the source itself for a local one.
func (t *Trainer) checkWeights(cfg sweep.Config, f pretrained.Fetched, script string) error {
	named := func(err error) error { return fmt.Errorf("init.weights %s: %w", redact.URL(cfg.Init.Weights), err) }
	channels, err := dataset.Channels(cfg.Data, t.dataOptions())
	if err != nil {
		return named(err)
	}
	size := 0
	if info, err := sweep.LookupModel(cfg.Model); err == nil && info.Patch > 0 {
		size = cfg.Resolution
	}
	var model sweep.Script
	if cfg.Script != nil {
		model = *cfg.Script
	}
	key := fmt.Sprintf("%s %s %d %d %s %q", f.SHA256, cfg.Model, channels, size, model.SHA256, model.Classifier)
	if _, ok := t.fitting.Load(key); ok {
		return nil
	}
	// One check at a time: a sweep prepares its combinations in parallel,
	// and each check holds a model and its weights in memory.
	t.fittingMu.Lock()
	defer t.fittingMu.Unlock()
	if _, ok := t.fitting.Load(key); ok {
		return nil
	}
	w, err := pretrained.Read(f.Path)
	if err != nil && f.Path == cfg.Init.Weights {
		return fmt.Errorf("init.weights: %w", err)
	}
	if err != nil {
		return named(err)
	}
	if err := WeightsFit(t.Lib, cfg, channels, script, w); err != nil {
		return named(err)
	}
	t.fitting.Store(key, true)
	return nil
}

// WeightsFit loads weights into a fresh model of cfg's architecture (a
// TorchScript model's from script) for images of channels, as a training's
// first epoch does: nil when they fit, ErrWeightsMismatch naming the first
// key that does not. Prepare checks so before any epoch.
func WeightsFit(lib *torch.Lib, cfg sweep.Config, channels int, script string, weights map[string]checkpoint.Tensor) error {
	unit := slices.Repeat([]float32{1}, channels)
	m, err := lib.NewModel(torch.ModelSpec{Name: cfg.Model, InChannels: channels, NumClasses: 2, ImageSize: cfg.Resolution,
		Mean: unit, Std: unit, ScriptPath: script})
	if err != nil {
		return err
	}
	defer m.Close()
	return LoadPretrained(m, weights, cfg.Classifier())
}

// dataOptions are the data options with the trainer's hash memo.
func (t *Trainer) dataOptions() dataset.Options {
	o := t.Data
	if o.Hashes == nil {
		o.Hashes = &t.hashes
	}
	return o
}

// New loads the bridge (libPath "" = default search) and sets libtorch's
// thread count (0 = all cores: libtorch starts with one here).
func New(libPath, device string, threads int) (*Trainer, error) {
	lib, err := torch.Open(libPath)
	if err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := lib.SetThreads(threads); err != nil {
		return nil, err
	}
	if device == "" {
		device = "cpu"
	}
	if err := torch.CheckDevice(device); err != nil {
		return nil, err
	}
	if strings.HasPrefix(device, "cuda") && lib.CUDADevices() == 0 {
		return nil, fmt.Errorf("%w: device %s, but libtorch %s at %s sees no CUDA device (a CPU build, or no driver)",
			torch.ErrInvalid, device, lib.TorchVersion(), lib.Path())
	}
	t := &Trainer{Lib: lib, Device: device, Logger: slog.Default(), LoaderWorkers: loaderWorkers(device)}
	if t.Data.JPEG, err = turbojpeg.Open(); err != nil {
		t.Data.JPEG = nil // an untyped nil: Go's decoder
		t.Logger.Warn("decoding JPEG photos with Go's decoder, several times slower", "err", err)
	}
	if strings.HasPrefix(device, "cuda") {
		if t.GPUStats, err = gpustat.Open(""); err != nil {
			t.Logger.Warn("epochs are recorded without GPU figures", "err", err)
		}
	}
	return t, nil
}

// Numerics is the fingerprint of the arithmetic this trainer's epochs run
// under (libtorch, device, BLAS kernel, ISA, threads, precision).
func (t *Trainer) Numerics() sweep.Numerics {
	n := sweep.Numerics{Torch: t.Lib.TorchVersion(), Device: t.Device, ChannelsLast: t.ChannelsLast}
	if t.MixedPrecision {
		n.Precision = "bf16"
	}
	if !strings.HasPrefix(t.Device, "cuda") {
		n.BLAS, n.CPU, n.Threads = t.Lib.BLAS(), torch.CPULevel(), t.Lib.Threads()
	}
	return n
}

// loaderWorkers is the default batch producer count: on a GPU most cores
// (a GPU outruns one core's crops ~10 to 1); on a CPU one, since libtorch's
// threads need the cores and a CPU step is far slower than a batch.
func loaderWorkers(device string) int {
	if strings.HasPrefix(device, "cuda") {
		return max(1, runtime.NumCPU()-2)
	}
	return 1
}

// UseFastGPUPaths turns bf16 autocast and channels-last on when on is true
// and the device is CUDA, and off otherwise: on CPU they cost speed and
// change numerics for nothing.
func (t *Trainer) UseFastGPUPaths(on bool) {
	on = on && strings.HasPrefix(t.Device, "cuda")
	t.MixedPrecision, t.ChannelsLast = on, on
}

// Prepare validates a config (complete: a spec's defaults are applied where
// it enters the system) and stamps the data set's content hash into it, so
// that its Hash names this exact training.
//
// Pretrained weights are fetched in ctx (a download: cancelled with it,
// its bytes reported to ctx's I/O watcher).
func (t *Trainer) Prepare(ctx context.Context, cfg sweep.Config) (sweep.Config, error) {
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if err := cfg.CheckURLs(); err != nil {
		return cfg, err
	}
	h, err := dataset.SourceHash(cfg.Data, t.dataOptions())
	if err != nil {
		return cfg, err
	}
	cfg.DataHash = h
	var script string
	if cfg.Script != nil {
		if cfg, script, err = t.prepareScript(ctx, cfg); err != nil {
			return cfg, err
		}
	}
	if cfg.Init != nil {
		f, err := t.Weights.Fetch(ctx, cfg.Init.Weights)
		if err != nil {
			return cfg, err
		}
		if err := t.checkWeights(cfg, f, script); err != nil {
			return cfg, err
		}
		init := *cfg.Init
		init.SHA256 = f.SHA256
		cfg.Init = &init
	}
	kindDefault, err := dataset.DefaultAugment(cfg.Data)
	if err != nil {
		return cfg, err
	}
	cfg = cfg.WithAugment(kindDefault)
	// The spec chose the decoder; where none makes the pixels, none names
	// the training.
	uses, err := dataset.DecodesPhotos(cfg.Data, cfg.Augment, t.dataOptions())
	if err != nil {
		return cfg, err
	}
	cfg = cfg.WithDecoder(uses)
	return cfg, cfg.Validate()
}

// CheckDecoder refuses early a training whose photos this worker cannot
// make with the decoder it names (dataset.ErrOtherDecoder: another worker
// can).
func (t *Trainer) CheckDecoder(cfg sweep.Config) error {
	return dataset.CheckDecoder(cfg.Data, cmp.Or(cfg.Augment, dataset.AugmentCIFAR), cfg.Decoder, t.dataOptions())
}

// NativeSide is the data's image size (its images' median shorter side).
func (t *Trainer) NativeSide(data string) (int, error) {
	return dataset.NativeSide(data, t.dataOptions())
}

// DataIdentity names a data set by its content (memoised per process).
func (t *Trainer) DataIdentity(data string) (dataset.Identity, error) {
	return dataset.Describe(data, t.dataOptions())
}

// prepareScript stamps the content of cfg's TorchScript model into it and
// loads it once per content, so that a file that is no TorchScript model
// fails Prepare, not every first epoch. path is its pinned file.
func (t *Trainer) prepareScript(ctx context.Context, cfg sweep.Config) (_ sweep.Config, path string, err error) {
	f, err := t.scriptFile(ctx, cfg)
	if err != nil {
		return cfg, "", err
	}
	script := *cfg.Script
	script.SHA256 = f.SHA256
	cfg.Script = &script
	if _, ok := t.fitting.Load("script " + f.SHA256); ok {
		return cfg, f.Path, nil
	}
	m, err := t.Lib.NewModel(torch.ModelSpec{Name: cfg.Model, InChannels: 1, NumClasses: 2, Mean: []float32{0}, Std: []float32{1},
		ScriptPath: f.Path})
	if err != nil {
		return cfg, "", fmt.Errorf("scripts: %s: %w", redact.URL(cfg.Script.File), err)
	}
	m.Close()
	t.fitting.Store("script "+f.SHA256, true)
	return cfg, f.Path, nil
}

// NewModel builds the model and optimiser of cfg for a data set.
func (t *Trainer) NewModel(ctx context.Context, cfg sweep.Config, ds *dataset.Set) (*torch.Model, error) {
	return t.newModel(ctx, cfg, ds.Train.C, len(ds.Classes), ds.Mean, ds.Std)
}

// ErrScriptChanged marks a TorchScript model whose file no longer holds
// what the training was prepared with.
var ErrScriptChanged = errkind.New(errkind.Invalid, "TorchScript model changed")

// scriptFile is the local file of cfg's TorchScript model ("" for a
// built-in model): fetched in ctx (or found in the cache), and the content
// Prepare named (a Prepare stamps it).
func (t *Trainer) scriptFile(ctx context.Context, cfg sweep.Config) (pretrained.Fetched, error) {
	if cfg.Script == nil {
		return pretrained.Fetched{}, nil
	}
	f, err := t.Weights.Fetch(ctx, cfg.Script.File)
	if err != nil {
		return f, fmt.Errorf("scripts: %s: %w", redact.URL(cfg.Script.File), err)
	}
	if cfg.Script.SHA256 != "" && f.SHA256 != cfg.Script.SHA256 {
		return f, fmt.Errorf("%w: %s is %.12s… here, %.12s… in the training's config", ErrScriptChanged,
			redact.URL(cfg.Script.File), f.SHA256, cfg.Script.SHA256)
	}
	// libtorch opens it by path: a copy named by its content is exactly
	// what was hashed.
	if f.Path, err = t.Weights.Pin(ctx, f); errors.Is(err, pretrained.ErrChecksum) {
		return f, fmt.Errorf("%w: %s: %w", ErrScriptChanged, redact.URL(cfg.Script.File), err)
	} else if err != nil { // the cache's folder: another attempt or worker may do
		return f, fmt.Errorf("scripts: %s: %w", redact.URL(cfg.Script.File), err)
	}
	return f, nil
}

// newModel builds cfg's model and optimiser for images of channels and
// classes, normalised by mean and std (part of the model).
func (t *Trainer) newModel(ctx context.Context, cfg sweep.Config, channels, classes int, mean, std []float32) (*torch.Model, error) {
	opt := torch.SGD
	if cfg.Optimizer == "adamw" {
		opt = torch.AdamW
	}
	script, err := t.scriptFile(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return t.Lib.NewModel(torch.ModelSpec{ScriptPath: script.Path,
		Name: cfg.Model, InChannels: channels, NumClasses: classes, Device: t.Device,
		InitSeed:  initSeed(cfg),
		Optimizer: opt, Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay,
		Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, Mean: mean, Std: std,
		MixedPrecision: t.MixedPrecision, ChannelsLast: t.ChannelsLast, ImageSize: cfg.Resolution,
	})
}

// initSeed seeds a model's initial weights.
func initSeed(cfg sweep.Config) uint64 {
	return seed.Derive(cfg.Seed, cfg.Model, cfg.Resolution, "init")
}

// OpenData opens cfg's data set at cfg's resolution (cached, memory-mapped),
// reporting a cache build's progress to progress (nil: nowhere).
func (t *Trainer) OpenData(cfg sweep.Config, progress func(dataset.BuildProgress)) (*dataset.Set, error) {
	opts := t.dataOptions()
	// A config prepared before recipes were named trained with the CIFAR one.
	opts.Augment = cmp.Or(cfg.Augment, dataset.AugmentCIFAR)
	opts.SkipBadImages = cfg.SkipBadImages
	opts.Progress = progress
	if err := t.CheckDecoder(cfg); err != nil {
		return nil, err
	}
	ds, err := dataset.Open(cfg.Data, cfg.Resolution, opts)
	if err != nil {
		return nil, err
	}
	if len(ds.Classes) < 2 {
		ds.Close()
		return nil, fmt.Errorf("%w: data set %s has %d classes", dataset.ErrBadData, ds.Name, len(ds.Classes))
	}
	if cfg.DataHash != "" && ds.SourceHash != cfg.DataHash {
		ds.Close()
		return nil, fmt.Errorf("%w: data set %s changed since this training was prepared (content %.12s, want %.12s)",
			dataset.ErrBadData, cfg.Data, ds.SourceHash, cfg.DataHash)
	}
	ds.Train = ds.Train.Limit(cfg.TrainLimit)
	ds.Val = ds.Val.Limit(cfg.ValLimit)
	if ds.Train.N < cfg.BatchSize {
		ds.Close()
		return nil, fmt.Errorf("%w: batch_size %d exceeds the %d training images", sweep.ErrInvalid, cfg.BatchSize, ds.Train.N)
	}
	return ds, nil
}
