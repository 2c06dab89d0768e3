// Package torch is ResoMap's libtorch binding: it loads the bridge library
// (csrc/, a small C ABI) at run time with purego and wraps its models,
// tensors and calls. Everything that is not numerics lives elsewhere.
package torch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/resomap/resomap/internal/errkind"
)

// ABIVersion is the version of csrc/resomap.h this package speaks.
const ABIVersion = 6

// Status codes of the C ABI.
const (
	statusOK      = 0
	statusErr     = 1
	statusOOM     = 2
	statusInvalid = 3
)

// ErrOutOfMemory marks an allocation failure inside libtorch (CPU or CUDA);
// the orchestration retries such a step with a smaller micro-batch.
var ErrOutOfMemory = errkind.New(errkind.OutOfMemory, "out of memory")

// ErrInvalid marks bad input detected by libtorch (unknown model, wrong shape).
var ErrInvalid = errkind.New(errkind.Invalid, "invalid argument")

// ErrLibraryMissing is returned by Open when the bridge library is absent.
var ErrLibraryMissing = errors.New("libresomap.so not found")

// Lib is the loaded libtorch bridge. Load it once per process with Open.
type Lib struct {
	path string
	blas string // the BLAS kernel libtorch runs on (blasKernel)

	inFlightMu sync.Mutex
	inFlight   map[uint64]time.Time // bridge calls running now, by call number
	nextCall   uint64
	liveModels atomic.Int64

	abiVersion      func() int32
	lastError       func() string
	torchVersion    func() string
	modelNames      func() string
	setThreads      func(int32) int32
	getThreads      func() int32
	cudaDeviceCount func() int32
	modelSeed       func(m uintptr, seed uint64) int32
	modelNew        func(opts *modelOptions, out *uintptr) int32
	modelFree       func(uintptr)
	zeroGrad        func(uintptr)
	forwardBackward func(m uintptr, images *byte, labels *int64, n int64, c, h, w int32,
		scale, smoothing float64, lossSum *float64, correct *int64) int32
	optimizerStep func(m uintptr, lr float64) int32
	setLRScale    func(m uintptr, keepPrefix *byte, scale float64) int32
	stageBatch    func(m uintptr, images *byte, labels *int64, n int64, c, h, w int32) int32
	fbStaged      func(m uintptr, lo, hi int64, scale, smoothing float64) int32
	takeMetrics   func(m uintptr, lossSums *float64, corrects *int64, capacity int32, count *int32) int32
	evaluate      func(m uintptr, images *byte, labels *int64, n int64, c, h, w int32,
		lossSum *float64, correct *int64, logits *float32) int32
	stateCount        func(m uintptr) int32
	stateInfo         func(m uintptr, i int32, name **byte, dtype, ndim *int32, shape *int64, nbytes *int64) int32
	stateRead         func(m uintptr, i int32, dst unsafe.Pointer, nbytes int64) int32
	stateWrite        func(m uintptr, i int32, src unsafe.Pointer, nbytes int64) int32
	stateWriteResized func(m uintptr, i int32, src unsafe.Pointer, nbytes int64, ndim int32, shape *int64) int32
}

var (
	openMu sync.Mutex
	opened = map[string]*Lib{}
)

// LibraryPath finds the bridge: $RESOMAP_LIB, else build/libresomap.so in
// the working directory or any parent (so tests find it from a package dir).
func LibraryPath() string {
	if p := os.Getenv("RESOMAP_LIB"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return "build/libresomap.so"
	}
	for {
		p := filepath.Join(dir, "build", "libresomap.so")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "build/libresomap.so"
		}
		dir = parent
	}
}

// Open loads the bridge library at path ("" = LibraryPath()). Loading the
// same path twice returns the same Lib: a shared object cannot be unloaded
// safely while libtorch's threads run.
func Open(path string) (*Lib, error) {
	if path == "" {
		path = LibraryPath()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	openMu.Lock()
	defer openMu.Unlock()
	if l, ok := opened[abs]; ok {
		return l, nil
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%w at %s: build it with `make shim` (Debian: apt-get install libtorch-dev; other libtorch: make shim LIBTORCH=/path/to/libtorch) or set RESOMAP_LIB", ErrLibraryMissing, abs)
	}
	keepStepMemory() // before libtorch allocates anything
	h, err := purego.Dlopen(abs, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w (is libtorch on the library path?)", abs, err)
	}
	l := &Lib{path: abs}
	if err := l.register(h); err != nil {
		return nil, err
	}
	l.blas = blasKernel(h)
	opened[abs] = l
	return l, nil
}

// register binds l's calls to the library h, its ABI version first: a
// library of another version is refused before any other symbol is looked
// up.
func (l *Lib) register(h uintptr) (err error) {
	reg := func(fptr any, name string) {
		if err != nil {
			return
		}
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("load %s: symbol %s: %v", l.path, name, r)
			}
		}()
		purego.RegisterLibFunc(fptr, h, name)
	}
	reg(&l.abiVersion, "rm_abi_version")
	if err != nil {
		return err
	}
	if v := l.abiVersion(); v != ABIVersion {
		return fmt.Errorf("load %s: ABI version %d, this program needs %d: rebuild with `make shim`", l.path, v, ABIVersion)
	}
	for _, s := range []struct {
		fptr any
		name string
	}{
		{&l.lastError, "rm_last_error"}, {&l.torchVersion, "rm_torch_version"}, {&l.modelNames, "rm_model_names"},
		{&l.setThreads, "rm_set_threads"}, {&l.getThreads, "rm_get_threads"}, {&l.cudaDeviceCount, "rm_cuda_device_count"},
		{&l.modelSeed, "rm_model_seed"}, {&l.modelNew, "rm_model_new"}, {&l.modelFree, "rm_model_free"},
		{&l.zeroGrad, "rm_zero_grad"}, {&l.forwardBackward, "rm_forward_backward"}, {&l.optimizerStep, "rm_optimizer_step"},
		{&l.setLRScale, "rm_set_lr_scale"}, {&l.stageBatch, "rm_stage_batch"}, {&l.fbStaged, "rm_forward_backward_staged"},
		{&l.takeMetrics, "rm_take_metrics"}, {&l.evaluate, "rm_evaluate"}, {&l.stateCount, "rm_state_count"},
		{&l.stateInfo, "rm_state_info"}, {&l.stateRead, "rm_state_read"}, {&l.stateWrite, "rm_state_write"},
		{&l.stateWriteResized, "rm_state_write_resized"},
	} {
		reg(s.fptr, s.name)
	}
	return err
}

// Path is the file the library was loaded from.
func (l *Lib) Path() string { return l.path }

// TorchVersion is the libtorch version the bridge was compiled against.
func (l *Lib) TorchVersion() string { return l.torchVersion() }

// ModelNames are the models the bridge builds by name (sweep.Models is the
// registry; a test holds the two equal).
func (l *Lib) ModelNames() []string { return strings.Split(l.modelNames(), ",") }

// CUDADevices is the number of CUDA devices libtorch sees.
// The call is watched: initialising CUDA can hang on a broken driver.
func (l *Lib) CUDADevices() int {
	var n int32
	_ = l.call(func() int32 { n = l.cudaDeviceCount(); return statusOK })
	return int(n)
}

// SetThreads sets libtorch's intra-op thread count (it starts with one here).
func (l *Lib) SetThreads(n int) error {
	return l.call(func() int32 { return l.setThreads(int32(n)) })
}

// Threads reports libtorch's intra-op thread count.
func (l *Lib) Threads() int {
	var n int32
	_ = l.call(func() int32 { n = l.getThreads(); return statusOK })
	return int(n)
}

// OldestCall is when the longest-running bridge call now in progress
// started; ok is false when none is running. A call that never returns
// (libtorch can hang, e.g. when it cannot create a thread) shows here, which
// is how a worker notices that it is stuck.
func (l *Lib) OldestCall() (since time.Time, ok bool) {
	l.inFlightMu.Lock()
	defer l.inFlightMu.Unlock()
	for _, t := range l.inFlight {
		if !ok || t.Before(since) {
			since, ok = t, true
		}
	}
	return since, ok
}

func (l *Lib) enter() uint64 {
	l.inFlightMu.Lock()
	defer l.inFlightMu.Unlock()
	if l.inFlight == nil {
		l.inFlight = map[uint64]time.Time{}
	}
	l.nextCall++
	l.inFlight[l.nextCall] = time.Now()
	return l.nextCall
}

func (l *Lib) leave(id uint64) {
	l.inFlightMu.Lock()
	defer l.inFlightMu.Unlock()
	delete(l.inFlight, id)
}

// call runs f on one locked OS thread so that the thread-local error message
// read afterwards belongs to that call.
func (l *Lib) call(f func() int32) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id := l.enter()
	st := f()
	l.leave(id)
	if st == statusOK {
		return nil
	}
	msg := l.lastError()
	switch st {
	case statusOOM:
		return fmt.Errorf("%w: %s", ErrOutOfMemory, msg)
	case statusInvalid:
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	default:
		return fmt.Errorf("libtorch: %s", msg)
	}
}
