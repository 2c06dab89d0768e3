package torch

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/resomap/resomap/dataset"
)

// OptimizerKind selects the update rule.
type OptimizerKind int32

const (
	SGD   OptimizerKind = 0
	AdamW OptimizerKind = 1
)

// ModelSpec is everything the bridge needs to build a model and optimiser.
type ModelSpec struct {
	Name         string
	InChannels   int
	NumClasses   int
	Device       string // "cpu", "cuda", "cuda:1"
	InitSeed     uint64
	Optimizer    OptimizerKind
	Momentum     float64
	Nesterov     bool
	WeightDecay  float64
	Beta1, Beta2 float64
	Eps          float64
	Mean, Std    []float32 // per channel
	// MixedPrecision (bf16 autocast) and ChannelsLast apply on any device;
	// they pay off on CUDA, so callers turn them on there (see UseFastGPUPaths).
	MixedPrecision bool
	ChannelsLast   bool
	// ImageSize is the resolution the model trains at; a ViT sizes its
	// position embedding by it (other models ignore it).
	ImageSize int
	// ScriptPath, when set, is a TorchScript model's file: the model is
	// that one (its own parameters, names and initial weights), and Name
	// only names it.
	ScriptPath string
}

// Model is a network plus its optimiser state, living in libtorch.
type Model struct {
	lib        *Lib
	h          uintptr
	spec       ModelSpec
	tensors    []TensorInfo
	logitsSize int

	pending      int // ForwardBackwardStaged calls not yet taken
	takenLoss    []float64
	takenCorrect []int64
}

// TensorInfo names one exported tensor.
type TensorInfo struct {
	Name   string
	DType  DType
	Shape  []int64
	NBytes int64
}

// DType is a tensor element type.
type DType int32

const (
	F32 DType = iota
	F64
	I64
	BF16
	F16
	I32
	U8
)

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// CheckDevice accepts the devices ResoMap trains on: cpu, cuda and cuda:N.
// Whether that device exists is for libtorch to say, when a model is built.
func CheckDevice(dev string) error {
	if dev == "cpu" || dev == "cuda" {
		return nil
	}
	if n, ok := strings.CutPrefix(dev, "cuda:"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 && strconv.Itoa(i) == n {
			return nil
		}
	}
	return fmt.Errorf("%w: device %q: want cpu, cuda or cuda:N", ErrInvalid, dev)
}

// modelOptions mirrors rm_model_options in csrc/resomap.h field for field.
type modelOptions struct {
	size                                     uint64
	name, device                             *byte
	initSeed                                 uint64
	mean, std                                *float32
	momentum, weightDecay, beta1, beta2, eps float64
	inChannels, numClasses, optimizer        int32
	nesterov, mixedPrecision, channelsLast   int32
	imageSize                                int32
	scriptPath                               *byte
}

// cString is s as a NUL-terminated C string.
func cString(s string) *byte { return &append([]byte(s), 0)[0] }

// NewModel builds a freshly initialised model (deterministic in InitSeed).
func (l *Lib) NewModel(s ModelSpec) (*Model, error) {
	if len(s.Mean) != s.InChannels || len(s.Std) != s.InChannels {
		return nil, fmt.Errorf("%w: mean/std need %d values", ErrInvalid, s.InChannels)
	}
	if s.Device == "" {
		s.Device = "cpu"
	}
	if err := CheckDevice(s.Device); err != nil {
		return nil, err
	}
	o := &modelOptions{name: cString(s.Name), device: cString(s.Device), initSeed: s.InitSeed,
		mean: &s.Mean[0], std: &s.Std[0], momentum: s.Momentum, weightDecay: s.WeightDecay,
		beta1: s.Beta1, beta2: s.Beta2, eps: s.Eps, inChannels: int32(s.InChannels), numClasses: int32(s.NumClasses),
		optimizer: int32(s.Optimizer), nesterov: b2i(s.Nesterov), mixedPrecision: b2i(s.MixedPrecision), channelsLast: b2i(s.ChannelsLast),
		imageSize: int32(s.ImageSize)}
	if s.ScriptPath != "" {
		o.scriptPath = cString(s.ScriptPath)
	}
	o.size = uint64(unsafe.Sizeof(*o))
	var h uintptr
	err := l.call(func() int32 { return l.modelNew(o, &h) })
	runtime.KeepAlive(o)
	if err != nil {
		return nil, fmt.Errorf("create model %s: %w", s.Name, err)
	}
	m := &Model{lib: l, h: h, spec: s, logitsSize: s.NumClasses}
	l.liveModels.Add(1)
	if err := m.listTensors(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// listTensors reads the names, types and shapes of the model's tensors.
func (m *Model) listTensors() error {
	var n int32
	if err := m.lib.call(func() int32 { n = m.lib.stateCount(m.h); return statusOK }); err != nil {
		return err
	}
	for i := range n {
		var namePtr *byte
		var dt, ndim int32
		shape := make([]int64, 8)
		var nb int64
		if err := m.lib.call(func() int32 { return m.lib.stateInfo(m.h, i, &namePtr, &dt, &ndim, &shape[0], &nb) }); err != nil {
			return err
		}
		m.tensors = append(m.tensors, TensorInfo{Name: goString(namePtr), DType: DType(dt), Shape: shape[:ndim], NBytes: nb})
	}
	return nil
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// Spec returns the spec the model was built from.
func (m *Model) Spec() ModelSpec { return m.spec }

// Close frees the model in libtorch.
func (m *Model) Close() {
	if m.h != 0 {
		h := m.h
		_ = m.lib.call(func() int32 { m.lib.modelFree(h); return statusOK })
		m.h = 0
		m.lib.liveModels.Add(-1)
		releaseFreedMemory()
	}
}

// LiveModels is the number of models built and not yet closed: what a
// worker holds in memory (checked against its resident-model bound).
func (l *Lib) LiveModels() int { return int(l.liveModels.Load()) }

func checkBatch(b dataset.Batch) error {
	if b.N() == 0 || len(b.Images) != b.N()*b.C*b.H*b.W {
		return fmt.Errorf("%w: batch of %d labels has %d bytes, want %d", ErrInvalid, b.N(), len(b.Images), b.N()*b.C*b.H*b.W)
	}
	return nil
}

// ZeroGrad clears accumulated gradients.
func (m *Model) ZeroGrad() error {
	return m.lib.call(func() int32 { m.lib.zeroGrad(m.h); return statusOK })
}

// ForwardBackward accumulates the gradient of scale*loss for one micro-batch
// and returns its summed loss and number of correct predictions.
func (m *Model) ForwardBackward(b dataset.Batch, scale, labelSmoothing float64) (lossSum float64, correct int64, err error) {
	if err := checkBatch(b); err != nil {
		return 0, 0, err
	}
	err = m.lib.call(func() int32 {
		return m.lib.forwardBackward(m.h, &b.Images[0], &b.Labels[0], int64(b.N()), int32(b.C), int32(b.H), int32(b.W),
			scale, labelSmoothing, &lossSum, &correct)
	})
	return lossSum, correct, err
}

// Stage puts b on the model's device for the next ForwardBackwardStaged
// calls; on CUDA the copy does not block, so staging step k+1's batch while
// step k runs hides the upload. b may be reused as soon as Stage returns.
func (m *Model) Stage(b dataset.Batch) error {
	if err := checkBatch(b); err != nil {
		return err
	}
	return m.lib.call(func() int32 {
		return m.lib.stageBatch(m.h, &b.Images[0], &b.Labels[0], int64(b.N()), int32(b.C), int32(b.H), int32(b.W))
	})
}

// ForwardBackwardStaged is ForwardBackward on images [lo, hi) of the staged
// batch, without waiting for the device: TakeMetrics returns its figures.
func (m *Model) ForwardBackwardStaged(lo, hi int, scale, labelSmoothing float64) error {
	err := m.lib.call(func() int32 { return m.lib.fbStaged(m.h, int64(lo), int64(hi), scale, labelSmoothing) })
	if err == nil {
		m.pending++
	}
	return err
}

// MicroBatchMetrics are the figures of one ForwardBackwardStaged call.
type MicroBatchMetrics struct {
	LossSum float64
	Correct int64
}

// TakeMetrics waits for the device and returns the figures of every
// ForwardBackwardStaged call since the last take, in call order.
func (m *Model) TakeMetrics(dst []MicroBatchMetrics) ([]MicroBatchMetrics, error) {
	if len(m.takenLoss) < m.pending+1 {
		m.takenLoss, m.takenCorrect = make([]float64, m.pending+1), make([]int64, m.pending+1)
	}
	var count int32
	err := m.lib.call(func() int32 {
		return m.lib.takeMetrics(m.h, &m.takenLoss[0], &m.takenCorrect[0], int32(len(m.takenLoss)), &count)
	})
	if err != nil {
		return dst, err
	}
	m.pending = 0
	for i := range int(count) {
		dst = append(dst, MicroBatchMetrics{LossSum: m.takenLoss[i], Correct: m.takenCorrect[i]})
	}
	return dst, nil
}

// Step applies the optimiser with learning rate lr.
func (m *Model) Step(lr float64) error {
	return m.lib.call(func() int32 { return m.lib.optimizerStep(m.h, lr) })
}

// SetLRScale makes every parameter whose name does not start with
// keepPrefix (the classifier's) step at lr*scale from the next Step on; 0
// freezes them. Fine-tuning sets it; a fresh model steps all at scale 1.
func (m *Model) SetLRScale(keepPrefix string, scale float64) error {
	p := cString(keepPrefix)
	return m.lib.call(func() int32 { return m.lib.setLRScale(m.h, p, scale) })
}

// Evaluate runs the model in eval mode. logits, if non-nil, receives
// N*NumClasses values.
func (m *Model) Evaluate(b dataset.Batch, logits []float32) (lossSum float64, correct int64, err error) {
	if err := checkBatch(b); err != nil {
		return 0, 0, err
	}
	var lp *float32
	if logits != nil {
		if len(logits) != b.N()*m.logitsSize {
			return 0, 0, fmt.Errorf("%w: logits buffer has %d values, want %d", ErrInvalid, len(logits), b.N()*m.logitsSize)
		}
		lp = &logits[0]
	}
	err = m.lib.call(func() int32 {
		return m.lib.evaluate(m.h, &b.Images[0], &b.Labels[0], int64(b.N()), int32(b.C), int32(b.H), int32(b.W),
			&lossSum, &correct, lp)
	})
	return lossSum, correct, err
}

// Tensors lists the exported tensors: model keys (torchvision's names) first,
// then optimiser state under "optimizer.".
func (m *Model) Tensors() []TensorInfo { return slices.Clone(m.tensors) }

// ReadTensor copies tensor i into dst (len = NBytes).
func (m *Model) ReadTensor(i int, dst []byte) error {
	if int64(len(dst)) != m.tensors[i].NBytes {
		return fmt.Errorf("%w: %s needs %d bytes", ErrInvalid, m.tensors[i].Name, m.tensors[i].NBytes)
	}
	if len(dst) == 0 {
		return nil
	}
	return m.lib.call(func() int32 { return m.lib.stateRead(m.h, int32(i), unsafe.Pointer(&dst[0]), int64(len(dst))) })
}

// WriteTensor overwrites tensor i with src (len = NBytes).
func (m *Model) WriteTensor(i int, src []byte) error {
	if int64(len(src)) != m.tensors[i].NBytes {
		return fmt.Errorf("%w: %s needs %d bytes, got %d", ErrInvalid, m.tensors[i].Name, m.tensors[i].NBytes, len(src))
	}
	if len(src) == 0 {
		return nil
	}
	return m.lib.call(func() int32 { return m.lib.stateWrite(m.h, int32(i), unsafe.Pointer(&src[0]), int64(len(src))) })
}

// WriteTensorResized writes src, tensor i made for another shape (same
// element type), where the model knows how to resize it: a ViT's position
// embedding made for another image size. ErrInvalid for any other tensor.
func (m *Model) WriteTensorResized(i int, shape []int64, src []byte) error {
	if i < 0 || i >= len(m.tensors) {
		return fmt.Errorf("%w: tensor %d of %d", ErrInvalid, i, len(m.tensors))
	}
	// The bridge checks the byte count against the shape (overflow-safe);
	// here only what the call's pointers need.
	if len(shape) < 1 || len(shape) > 8 || len(src) == 0 {
		return fmt.Errorf("%w: %s: shape %v in %d bytes", ErrInvalid, m.tensors[i].Name, shape, len(src))
	}
	return m.lib.call(func() int32 {
		return m.lib.stateWriteResized(m.h, int32(i), unsafe.Pointer(&src[0]), int64(len(src)), int32(len(shape)), &shape[0])
	})
}

// Seed seeds the model's own generator (dropout masks); the trainer seeds
// it before every step with a seed derived from the step's coordinates. Two
// models in one process never share a stream.
func (m *Model) Seed(seed uint64) error {
	return m.lib.call(func() int32 { return m.lib.modelSeed(m.h, seed) })
}
