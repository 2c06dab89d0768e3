package trainer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// ModelInfo describes one architecture the bridge can build.
type ModelInfo struct {
	Name   string
	Family string // first path element of the checkpoint layout
	// MinResolution: VGG's five 2x2 max-pools need at least 32 px.
	MinResolution int
}

// MaxResolution bounds the input size; beyond it a single image is larger
// than any accelerator can train on in a useful batch.
const MaxResolution = 2048

var models = []ModelInfo{
	{"smallcnn", "cnn", 8},
	{"vgg11", "vgg", 32}, {"vgg11_bn", "vgg", 32},
	{"vgg13", "vgg", 32}, {"vgg13_bn", "vgg", 32},
	{"vgg16", "vgg", 32}, {"vgg16_bn", "vgg", 32},
	{"vgg19", "vgg", 32}, {"vgg19_bn", "vgg", 32},
	{"resnet18", "resnet", 32}, {"resnet34", "resnet", 32}, {"resnet50", "resnet", 32},
}

// Models lists every supported architecture.
func Models() []ModelInfo { return slices.Clone(models) }

// LookupModel returns the architecture called name.
func LookupModel(name string) (ModelInfo, error) {
	for _, m := range models {
		if m.Name == name {
			return m, nil
		}
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return ModelInfo{}, fmt.Errorf("%w: unknown model %q (known: %s)", ErrInvalid, name, strings.Join(names, ", "))
}

// CheckResolution rejects resolutions a model cannot train at.
func (m ModelInfo) CheckResolution(res int) error {
	if res < m.MinResolution || res > MaxResolution {
		return fmt.Errorf("%w: resolution %d out of range for %s (%d..%d px)", ErrInvalid, res, m.Name, m.MinResolution, MaxResolution)
	}
	return nil
}

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

// NewModel builds a freshly initialised model (deterministic in InitSeed).
func (l *Lib) NewModel(s ModelSpec) (*Model, error) {
	if _, err := LookupModel(s.Name); err != nil {
		return nil, err
	}
	if len(s.Mean) != s.InChannels || len(s.Std) != s.InChannels {
		return nil, fmt.Errorf("%w: mean/std need %d values", ErrInvalid, s.InChannels)
	}
	if s.Device == "" {
		s.Device = "cpu"
	}
	if err := CheckDevice(s.Device); err != nil {
		return nil, err
	}
	var h uintptr
	err := l.call(func() int32 {
		return l.modelNew(s.Name, int32(s.InChannels), int32(s.NumClasses), s.Device, s.InitSeed,
			int32(s.Optimizer), s.Momentum, b2i(s.Nesterov), s.WeightDecay, s.Beta1, s.Beta2, s.Eps,
			&s.Mean[0], &s.Std[0], b2i(s.MixedPrecision), b2i(s.ChannelsLast), &h)
	})
	if err != nil {
		return nil, fmt.Errorf("create model %s: %w", s.Name, err)
	}
	m := &Model{lib: l, h: h, spec: s, logitsSize: s.NumClasses}
	n := int(l.stateCount(h))
	for i := 0; i < n; i++ {
		var namePtr *byte
		var dt, ndim int32
		shape := make([]int64, 8)
		var nb int64
		if err := l.call(func() int32 { return l.stateInfo(h, int32(i), &namePtr, &dt, &ndim, &shape[0], &nb) }); err != nil {
			m.Close()
			return nil, err
		}
		m.tensors = append(m.tensors, TensorInfo{Name: goString(namePtr), DType: DType(dt), Shape: shape[:ndim], NBytes: nb})
	}
	return m, nil
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
		m.lib.modelFree(m.h)
		m.h = 0
	}
}

// Batch is a set of uint8 NCHW images with their labels.
type Batch struct {
	Images  []byte
	Labels  []int64
	C, H, W int
}

// N is the number of images in the batch.
func (b Batch) N() int { return len(b.Labels) }

func (b Batch) check() error {
	if b.N() == 0 || len(b.Images) != b.N()*b.C*b.H*b.W {
		return fmt.Errorf("%w: batch of %d labels has %d bytes, want %d", ErrInvalid, b.N(), len(b.Images), b.N()*b.C*b.H*b.W)
	}
	return nil
}

// ZeroGrad clears accumulated gradients.
func (m *Model) ZeroGrad() { m.lib.zeroGrad(m.h) }

// ForwardBackward accumulates the gradient of scale*loss for one micro-batch
// and returns its summed loss and number of correct predictions.
func (m *Model) ForwardBackward(b Batch, scale, labelSmoothing float64) (lossSum float64, correct int64, err error) {
	if err := b.check(); err != nil {
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
func (m *Model) Stage(b Batch) error {
	if err := b.check(); err != nil {
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

// Evaluate runs the model in eval mode. logits, if non-nil, receives
// N*NumClasses values.
func (m *Model) Evaluate(b Batch, logits []float32) (lossSum float64, correct int64, err error) {
	if err := b.check(); err != nil {
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

// ManualSeed seeds libtorch's global generators (dropout); the trainer calls
// it before every step with a seed derived from the step's coordinates.
func (l *Lib) ManualSeed(seed uint64) { l.manualSeed(seed) }
