package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/resomap/resomap/dataset"
)

// Hyper are the training settings shared by every combination of a sweep.
// Their JSON names and order are part of the config hash: never reorder or
// rename them (TestConfigHashIsStable).
type Hyper struct {
	BatchSize int `json:"batch_size" yaml:"batch_size"`

	Optimizer   string  `json:"optimizer" yaml:"optimizer"` // sgd | adamw
	LR          float64 `json:"lr" yaml:"lr"`
	Momentum    float64 `json:"momentum" yaml:"momentum"`
	Nesterov    bool    `json:"nesterov" yaml:"nesterov"`
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	Beta1       float64 `json:"beta1,omitempty" yaml:"beta1"`
	Beta2       float64 `json:"beta2,omitempty" yaml:"beta2"`
	Eps         float64 `json:"eps,omitempty" yaml:"eps"`

	Schedule     string  `json:"schedule" yaml:"schedule"` // cosine | step | constant
	WarmupEpochs float64 `json:"warmup_epochs" yaml:"warmup_epochs"`
	StepEpochs   int     `json:"step_epochs,omitempty" yaml:"step_epochs"` // step schedule: decay every N epochs
	Gamma        float64 `json:"gamma,omitempty" yaml:"gamma"`
	MinLR        float64 `json:"min_lr" yaml:"min_lr"`

	LabelSmoothing float64 `json:"label_smoothing" yaml:"label_smoothing"`
	CropPadding    int     `json:"crop_padding" yaml:"crop_padding"`
	Flip           bool    `json:"flip" yaml:"flip"`
}

// Config is everything that determines a training run's result. Two runs
// with the same Config (and the same libtorch and thread count on CPU) end
// with the same weights; its Hash names the result.
type Config struct {
	Model      string `json:"model"`
	Resolution int    `json:"resolution"`
	Epochs     int    `json:"epochs"`
	Hyper

	Seed       uint64 `json:"seed"`
	Data       string `json:"data"`        // fashion-mnist, IDX folder or image folder
	DataHash   string `json:"data_hash"`   // filled in from the data set's content
	TrainLimit int    `json:"train_limit"` // first N training images (0 = all)
	ValLimit   int    `json:"val_limit"`

	// Augment is the data recipe (dataset.AugmentCIFAR or AugmentImageNet;
	// "" until prepared: the data kind's default). SkipBadImages leaves
	// out images that do not decode. Both came after the first results
	// were stored: omitted when unset, and the CIFAR recipe hashes as
	// unset (see Hash), so earlier configs keep their names.
	Augment       string `json:"augment,omitempty"`
	SkipBadImages bool   `json:"skip_bad_images,omitempty"`
	// Patience stops training after this many epochs without a better
	// validation loss (0: off): it changes the result, so it names it;
	// omitted when off, so configs without it keep their hashes.
	Patience int `json:"patience,omitempty"`
	// Init is where the weights start: pretrained ones to fine-tune (nil:
	// from scratch, as every config stored before it; omitted then, so
	// their hashes stay).
	Init *Init `json:"init,omitempty"`
	// MicroBatch splits each batch of a model with BatchNorm (0: whole
	// batches): each micro-batch normalises over itself and updates the
	// running statistics, so it changes the weights and names them. Not
	// set for other models, whose micro-batches only bound memory;
	// omitted when whole, so configs without micro-batches keep their
	// hashes.
	MicroBatch int `json:"micro_batch,omitempty"`
	// Decoder is the JPEG decoder that makes the photos' pixels where one
	// does (the ImageNet recipe on an image folder): TurboJPEG and Go's
	// decoder give other pixels for the same file, so it names the
	// result. Chosen by the spec, not by the worker that prepares it, so
	// a config's name does not depend on where it was prepared; omitted
	// for the default (dataset.DecoderTurbo, what every result before it
	// was trained with where the worker had libturbojpeg0) and where no
	// decoder makes the pixels, so those configs keep their hashes.
	Decoder string `json:"decoder,omitempty"`
	// Script is the TorchScript model of a model named script:NAME (nil
	// for a built-in one, as every config before it: omitted then).
	Script *Script `json:"script,omitempty"`
}

// Init is fine-tuning from pretrained weights. The classifier is replaced
// for the data's classes; the other layers start from the weights.
type Init struct {
	// Weights is where they come from (a path, an http(s) URL or
	// torchvision:NAME); the hash names them by content (SHA256, stamped
	// by Prepare), not by place.
	Weights string `json:"weights"`
	SHA256  string `json:"sha256"`
	// LRScale: the pretrained layers train at lr × LRScale, the classifier
	// at lr; FreezeEpochs: the pretrained layers are not trained in the
	// first N epochs.
	LRScale      float64 `json:"lr_scale"`
	FreezeEpochs int     `json:"freeze_epochs"`
	// BatchNorm: "keep" the weights' running statistics, or "reestimate"
	// them from the data (reset before training).
	BatchNorm string `json:"batchnorm"`
}

// check names the first invalid setting of a training of epochs epochs.
func (i *Init) check(epochs int) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	switch {
	case i.Weights == "":
		return bad("init.weights", "empty: a path, an URL or torchvision:NAME")
	case !(i.LRScale >= 0) || math.IsInf(i.LRScale, 0):
		return bad("init.lr_scale", "%v, want >= 0", i.LRScale)
	case i.FreezeEpochs < 0 || i.FreezeEpochs > epochs:
		return bad("init.freeze_epochs", "%d, want 0..epochs", i.FreezeEpochs)
	case i.BatchNorm != BatchNormKeep && i.BatchNorm != BatchNormReestimate:
		return bad("init.batchnorm", "%q, want %s or %s", i.BatchNorm, BatchNormKeep, BatchNormReestimate)
	}
	return nil
}

// The BatchNorm choices of Init.
const (
	BatchNormKeep       = "keep"
	BatchNormReestimate = "reestimate"
)

// DefaultData is the data set of a spec or config that names none.
const DefaultData = dataset.FashionMNIST

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	info, err := LookupModel(c.Model)
	if err != nil {
		return err
	}
	if err := info.CheckResolution(c.Resolution); err != nil {
		return err
	}
	switch {
	case IsScript(c.Model) && (c.Script == nil || c.Script.File == ""):
		return badField("script", "%s needs its file", c.Model)
	case !IsScript(c.Model) && c.Script != nil:
		return badField("script", "set for the built-in model %s", c.Model)
	case c.Script != nil && c.Script.Classifier == "" && c.Init != nil && c.Init.FreezeEpochs > 0:
		// Without a classifier every layer is a pretrained one: frozen,
		// nothing would train.
		return badField("init.freeze_epochs", "%s names no classifier (scripts: …: classifier: PREFIX), so freezing the pretrained layers freezes all", c.Model)
	}
	if err := c.checkHyper(); err != nil {
		return err
	}
	if c.Init != nil {
		return c.Init.check(c.Epochs)
	}
	return nil
}

// checkHyper names the first invalid training setting.
func (c Config) checkHyper() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Epochs < 1 || c.Epochs > 100000:
		return badField("epochs", "%d, want 1..100000", c.Epochs)
	case c.BatchSize < 1 || c.BatchSize > 65536:
		return badField("batch_size", "%d, want 1..65536", c.BatchSize)
	case c.Optimizer != "sgd" && c.Optimizer != "adamw":
		return badField("optimizer", "%q, want sgd or adamw", c.Optimizer)
	case !(c.LR > 0) || !finite(c.LR):
		return badField("lr", "%v, want > 0", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return badField("momentum", "%v, want 0 <= momentum < 1", c.Momentum)
	case c.Nesterov && c.Momentum == 0:
		return badField("nesterov", "needs momentum > 0")
	case c.WeightDecay < 0 || !finite(c.WeightDecay):
		return badField("weight_decay", "%v, want >= 0", c.WeightDecay)
	case c.Optimizer == "adamw" && (c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 || !(c.Eps > 0)):
		return badField("beta1/beta2/eps", "need 0 <= beta < 1 and eps > 0")
	case c.Schedule != "cosine" && c.Schedule != "step" && c.Schedule != "constant":
		return badField("schedule", "%q, want cosine, step or constant", c.Schedule)
	case c.Schedule == "step" && (c.StepEpochs < 1 || !(c.Gamma > 0)):
		return badField("step_epochs/gamma", "step schedule needs step_epochs >= 1 and gamma > 0")
	case c.WarmupEpochs < 0 || c.WarmupEpochs > float64(c.Epochs):
		return badField("warmup_epochs", "%v, want 0..epochs", c.WarmupEpochs)
	case c.MinLR < 0 || c.MinLR > c.LR:
		return badField("min_lr", "%v, want 0..lr", c.MinLR)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1:
		return badField("label_smoothing", "%v, want 0 <= x < 1", c.LabelSmoothing)
	case c.CropPadding < 0 || c.CropPadding > c.Resolution/2:
		return badField("crop_padding", "%d, want 0..resolution/2", c.CropPadding)
	case c.TrainLimit < 0 || c.ValLimit < 0:
		return badField("train_limit/val_limit", "must be >= 0")
	case dataset.CheckAugment(c.Augment) != nil:
		return badField("augment", "%q, want %s or %s", c.Augment, dataset.AugmentCIFAR, dataset.AugmentImageNet)
	case dataset.CheckDecoderName(c.Decoder) != nil:
		return badField("decoder", "%q, want %s (the default) or %s", c.Decoder, dataset.DecoderTurbo, dataset.DecoderGo)
	}
	return nil
}

// WithAugment settles the data recipe: augment ("" = the data kind's
// default, given by kindDefault). The ImageNet recipe takes random crops of
// its own, so crop_padding is cleared: an unused setting must not split
// one training into two names.
func (c Config) WithAugment(kindDefault string) Config {
	if c.Augment == "" {
		c.Augment = kindDefault
	}
	if c.Augment == dataset.AugmentImageNet {
		c.CropPadding = 0
	}
	return c
}

// WithDecoder settles the JPEG decoder: none where no decoder makes the
// data's pixels (decodesPhotos false: IDX data, PNG photos, the CIFAR
// recipe), and the default omitted (configDecoder), so neither splits one
// training into two names.
func (c Config) WithDecoder(decodesPhotos bool) Config {
	c.Decoder = configDecoder(c.Decoder)
	if !decodesPhotos {
		c.Decoder = ""
	}
	return c
}

// Hash identifies the training result: the same hash means the same
// weights. Device, threads, checkpoint cadence and the micro-batch of a
// model without BatchNorm are not part of it.
func (c Config) Hash() string {
	if c.Augment == dataset.AugmentCIFAR {
		c.Augment = "" // the recipe of every config stored before recipes were named
	}
	if c.Init != nil {
		init := *c.Init
		init.Weights = "" // named by content: the same weights from another place train the same
		c.Init = &init
	}
	if c.Script != nil {
		script := *c.Script
		script.File = "" // named by content, as init weights are
		c.Script = &script
	}
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TrainMicroBatch is the micro-batch a training of c must use when its
// model has BatchNorm (MicroBatchChangesResult), and ok false when any
// micro-batch gives the same result.
func (c Config) TrainMicroBatch() (micro int, ok bool) {
	if !MicroBatchChangesResult(c.Model) {
		return 0, false
	}
	return c.MicroBatchFor(c.MicroBatch), true
}

// CheckMicroBatch refuses to train c with micro-batches of micro images
// where that changes the result the config's hash names.
func (c Config) CheckMicroBatch(micro int) error {
	want, ok := c.TrainMicroBatch()
	if got := c.MicroBatchFor(micro); ok && got != want {
		return fmt.Errorf("%w: %s@%d: micro-batch %d, but its config names %d: with BatchNorm or stochastic depth the micro-batch changes the result (set hyper.micro_batch to train another)",
			ErrInvalid, c.Model, c.Resolution, got, want)
	}
	return nil
}

// MicroBatchFor is the micro-batch to train with when micro is asked for:
// micro, or the whole batch when micro is 0 or larger than the batch.
func (h Hyper) MicroBatchFor(micro int) int {
	if micro <= 0 || micro > h.BatchSize {
		return h.BatchSize
	}
	return micro
}

// LRAt is the learning rate at global step t of total steps, stepsPerEpoch
// steps to an epoch: linear warm-up, then cosine or step decay.
func (c Config) LRAt(t, total, stepsPerEpoch int) float64 {
	warm := int(math.Round(c.WarmupEpochs * float64(stepsPerEpoch)))
	if t < warm {
		return c.LR * float64(t+1) / float64(warm)
	}
	switch c.Schedule {
	case "cosine":
		span := total - warm
		if span <= 1 {
			return c.LR
		}
		p := float64(t-warm) / float64(span-1)
		return c.MinLR + 0.5*(c.LR-c.MinLR)*(1+math.Cos(math.Pi*p))
	case "step":
		return max(c.MinLR, c.LR*math.Pow(c.Gamma, float64((t/stepsPerEpoch)/c.StepEpochs)))
	}
	return c.LR
}
