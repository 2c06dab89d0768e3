// Package sweep defines a sweep: models x resolutions with shared training
// settings, read from YAML presets or files, validated before anything runs.
package sweep

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/errkind"
)

//go:embed presets/*.yaml
var presets embed.FS

// ErrInvalid marks a spec that must not start.
var ErrInvalid = errkind.New(errkind.Invalid, "invalid sweep spec")

// SpecHyper is a spec's hyper: section: the training settings every
// combination shares, and the micro-batch, which bounds memory; it is part
// of the config only of models with BatchNorm, whose results depend on it
// (Config.MicroBatch).
type SpecHyper struct {
	Hyper      `yaml:",inline"`
	MicroBatch int `yaml:"micro_batch" json:"micro_batch"`
}

// Checkpointing: a mid-epoch checkpoint every N steps or T seconds.
type Checkpointing struct {
	EverySteps   int `yaml:"every_steps" json:"every_steps"`
	EverySeconds int `yaml:"every_seconds" json:"every_seconds"`
}

// ActivitySettings tune the per-epoch activity's durability.
type ActivitySettings struct {
	HeartbeatTimeoutSeconds int `yaml:"heartbeat_timeout_seconds" json:"heartbeat_timeout_seconds"`
	MaxAttempts             int `yaml:"max_attempts" json:"max_attempts"`
	// StickySeconds is how long an epoch waits for the worker that ran the
	// epoch before (which holds its model in memory) before any worker may
	// take it.
	StickySeconds int `yaml:"sticky_seconds" json:"sticky_seconds"`
}

// CostSettings price an hour of a worker's compute (training and
// validation), in any currency.
type CostSettings struct {
	PerHour float64 `yaml:"per_hour" json:"per_hour,omitempty"`
}

// TrackingSettings send every training to an MLflow tracking server (off
// when URI is empty). Credentials are never here: workers read them from
// MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN. Nothing here
// changes a training's result, so none of it is in the config.
type TrackingSettings struct {
	// URI of the tracking server (starter fills it from
	// MLFLOW_TRACKING_URI when the file leaves it out).
	URI string `yaml:"uri" json:"uri,omitempty"`
	// Experiment is the MLflow experiment ("": the sweep's name, or
	// MLFLOW_EXPERIMENT_NAME).
	Experiment string `yaml:"experiment" json:"experiment,omitempty"`
	// SkipCompleted skips a training whose config hash has a FINISHED run
	// on the server, like one found in the store.
	SkipCompleted bool `yaml:"skip_completed" json:"skip_completed,omitempty"`
	// LogModels attaches the best model (safetensors and record) to each
	// run, LogReport the report folder to the sweep's run.
	LogModels bool `yaml:"log_models" json:"log_models"`
	LogReport bool `yaml:"log_report" json:"log_report"`
}

// On says whether trainings are tracked.
func (t TrackingSettings) On() bool { return t.URI != "" }

// ExperimentFor is the experiment of sweep name.
func (t TrackingSettings) ExperimentFor(name string) string {
	if t.Experiment != "" {
		return t.Experiment
	}
	return name
}

// InitSettings fine-tune every training of the sweep from pretrained
// weights (Weights "": from scratch); see Init.
type InitSettings struct {
	Weights      string  `yaml:"weights" json:"weights,omitempty"`
	LRScale      float64 `yaml:"lr_scale" json:"lr_scale"`
	FreezeEpochs int     `yaml:"freeze_epochs" json:"freeze_epochs"`
	BatchNorm    string  `yaml:"batchnorm" json:"batchnorm"`
}

// UnmarshalYAML reads `init: PATH` (what a user writes first) as
// `init: {weights: PATH}`, and the mapping form field by field, refusing
// an unknown one with its line (a custom unmarshaler's fields escape the
// decoder's KnownFields check).
func (i *InitSettings) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var w string
		if err := n.Decode(&w); err != nil {
			return err
		}
		if w == "" {
			return fmt.Errorf("line %d: init: empty: want a weights file, an URL or torchvision:NAME (leave init out to train from scratch)", n.Line)
		}
		*i = InitSettings{Weights: w}
		return nil
	case yaml.MappingNode:
		for k := 0; k+1 < len(n.Content); k += 2 {
			switch key := n.Content[k]; key.Value {
			case "weights", "lr_scale", "freeze_epochs", "batchnorm":
			default:
				return fmt.Errorf("line %d: init: unknown setting %q (init takes weights, lr_scale, freeze_epochs, batchnorm)", key.Line, key.Value)
			}
		}
		type plain InitSettings // without this method
		return n.Decode((*plain)(i))
	}
	return fmt.Errorf("line %d: init: want a weights file, an URL or torchvision:NAME, or {weights: …, lr_scale: …}", n.Line)
}

// Spec is one sweep.
type Spec struct {
	Name        string   `yaml:"name" json:"name"`
	Models      []string `yaml:"models" json:"models"`
	Resolutions []int    `yaml:"resolutions" json:"resolutions"`
	Epochs      int      `yaml:"epochs" json:"epochs"`
	Data        string   `yaml:"data" json:"data"`
	// Augment is the data recipe: imagenet or cifar ("": imagenet for an
	// image folder, cifar for IDX data).
	Augment       string `yaml:"augment" json:"augment,omitempty"`
	SkipBadImages bool   `yaml:"skip_bad_images" json:"skip_bad_images,omitempty"`
	// Decoder is the JPEG decoder photos are made with under the ImageNet
	// recipe: libjpeg-turbo ("", the default: PIL's) or go; workers
	// without it refuse such trainings.
	Decoder string `yaml:"decoder" json:"decoder,omitempty"`
	// TestResolutions are the sizes each trained combination's best
	// checkpoint is evaluated at (empty: the sweep's resolutions and 1.25x
	// the largest).
	TestResolutions []int `yaml:"test_resolutions" json:"test_resolutions,omitempty"`
	// AllowUpsampling trains resolutions more than MaxUpsampling times the
	// data's native size (refused otherwise: they measure upsampling).
	AllowUpsampling bool   `yaml:"allow_upsampling" json:"allow_upsampling,omitempty"`
	TrainLimit      int    `yaml:"train_limit" json:"train_limit"`
	ValLimit        int    `yaml:"val_limit" json:"val_limit"`
	Seed            uint64 `yaml:"seed" json:"seed"`
	// Seeds repeats each (model, resolution) once per seed (each >= 1);
	// empty: once, with Seed.
	Seeds       []uint64         `yaml:"seeds" json:"seeds,omitempty"`
	MaxParallel int              `yaml:"max_parallel" json:"max_parallel"`
	Patience    int              `yaml:"patience" json:"patience"` // early stopping (0 = off)
	Hyper       SpecHyper        `yaml:"hyper" json:"hyper"`
	Checkpoint  Checkpointing    `yaml:"checkpoint" json:"checkpoint"`
	Activity    ActivitySettings `yaml:"activity" json:"activity"`
	// Cost prices compute for the report (not part of any training).
	Cost CostSettings `yaml:"cost" json:"cost,omitzero"`
	// ContinueAsNewAfter bounds the sweep workflow's history: it continues
	// as new after this many combinations finished in one run.
	ContinueAsNewAfter int `yaml:"continue_as_new_after" json:"continue_as_new_after"`
	// Tracking logs trainings to MLflow (not part of any training).
	Tracking TrackingSettings `yaml:"tracking" json:"tracking,omitzero"`
	// Init: pretrained weights every training starts from.
	Init InitSettings `yaml:"init" json:"init"`
	// Scripts are the TorchScript models models names as script:NAME.
	Scripts map[string]ScriptSettings `yaml:"scripts,omitempty" json:"scripts,omitempty"`
}

// EffectiveTestResolutions are the sizes to evaluate at, ascending.
func (s Spec) EffectiveTestResolutions() []int {
	set := map[int]bool{}
	if len(s.TestResolutions) > 0 {
		for _, r := range s.TestResolutions {
			set[r] = true
		}
	} else if len(s.Resolutions) > 0 {
		for _, r := range s.Resolutions {
			set[r] = true
		}
		set[int(math.Round(1.25*float64(slices.Max(s.Resolutions))))] = true
	}
	out := make([]int, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Ints(out)
	return out
}

// checkSeeds refuses a zero, a repeated seed or too many.
func (s Spec) checkSeeds() error {
	if len(s.Seeds) > 100 {
		return fmt.Errorf("%w: seeds: %d, want at most 100", ErrInvalid, len(s.Seeds))
	}
	seen := map[uint64]bool{}
	for _, v := range s.Seeds {
		if v == 0 || seen[v] {
			return fmt.Errorf("%w: seeds: %v: each must be >= 1 and listed once", ErrInvalid, s.Seeds)
		}
		seen[v] = true
	}
	return nil
}

// MaxUpsampling is how far above the data's native size (its images'
// median shorter side) a resolution may go without allow_upsampling.
const MaxUpsampling = 1.25

// Upsampled reports whether resolution res measures upsampling of data
// whose images are native px (0: unknown).
func Upsampled(res, native int) bool {
	return native > 0 && float64(res) > MaxUpsampling*float64(native)
}

// CheckUpsampling refuses resolution res of data whose images are native px
// when it measures upsampling and the spec does not allow it.
func (s Spec) CheckUpsampling(model string, res, native int) error {
	if !Upsampled(res, native) || s.AllowUpsampling {
		return nil
	}
	return fmt.Errorf("%w: %s@%d: %d px is %.1fx the data's native size (%d px, its images' median shorter side), so it would measure upsampling, not resolution; point data at larger images, or set allow_upsampling: true to train it anyway",
		ErrInvalid, model, res, res, float64(res)/float64(native), native)
}

// Combination is one training of a sweep: a (model, resolution) pair, and
// its seed when the sweep repeats each pair over several (seeds:).
type Combination struct {
	Model      string `json:"model"`
	Resolution int    `json:"resolution"`
	// Seed is this training's seed from the sweep's seeds list (0: the
	// sweep's single seed, as before seeds lists existed).
	Seed uint64 `json:"seed,omitempty"`
}

// ID is the combination's readable name: model@resolution, with -seedN
// when the sweep lists seeds.
func (c Combination) ID() string { return TrainingID(c.Model, c.Resolution, c.Seed) }

// TrainingID names a training: model@resolution[-seedN] (seed 0: none).
func TrainingID(model string, res int, seed uint64) string {
	if seed == 0 {
		return fmt.Sprintf("%s@%d", model, res)
	}
	return fmt.Sprintf("%s@%d-seed%d", model, res, seed)
}

// Presets lists the names of the shipped presets.
func Presets() []string {
	entries, _ := presets.ReadDir("presets")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Load reads a preset by name, or a YAML file by path.
func Load(nameOrPath string) (Spec, error) {
	s, _, err := LoadWithOrigins(nameOrPath)
	return s, err
}

// LoadWithOrigins is Load that also says where each setting came from.
func LoadWithOrigins(nameOrPath string) (Spec, Origins, error) {
	var data []byte
	var err error
	source := "file"
	if strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml") || strings.Contains(nameOrPath, "/") {
		data, err = os.ReadFile(nameOrPath)
		if err != nil {
			return Spec{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	} else {
		source = "preset"
		data, err = presets.ReadFile(path.Join("presets", nameOrPath+".yaml"))
		if err != nil {
			return Spec{}, nil, fmt.Errorf("%w: unknown sweep %q (presets: %s; or give a path to a .yaml file)", ErrInvalid, nameOrPath, strings.Join(Presets(), ", "))
		}
	}
	return parse(data, source)
}

// Parse decodes YAML, refusing unknown fields; settings it leaves out take
// their documented defaults (defaults.go).
func Parse(data []byte) (Spec, error) {
	s, _, err := parse(data, "file")
	return s, err
}

func parse(data []byte, source string) (Spec, Origins, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Spec{}, nil, fmt.Errorf("%w: %v", ErrInvalid, inFileTerms(err))
	}
	origins, err := completeFrom(&s, data, source)
	if err != nil {
		return Spec{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s, origins, nil
}

// Alias is c's other name, if it has one: a sweep without seeds names its
// trainings model@res and trains them with its seed; grown by seeds, the
// same training is model@res-seedN with N that seed. Either name is the
// same training.
func (s Spec) Alias(c Combination) (Combination, bool) {
	switch c.Seed {
	case 0:
		c.Seed = s.Seed
	case s.Seed:
		c.Seed = 0
	default:
		return c, false
	}
	return c, true
}

// Pending is combination c's outcome before it starts.
func (s Spec) Pending(c Combination) Outcome {
	return Outcome{Identity: Identity{Model: c.Model, Family: FamilyOf(c.Model), Resolution: c.Resolution, Seed: c.Seed}, Epochs: s.Epochs, Status: Pending}
}

// Combinations expands the sweep in a stable order: models as listed, each
// at every resolution in ascending order, each once per seed of Seeds.
func (s Spec) Combinations() []Combination {
	res := append([]int(nil), s.Resolutions...)
	sort.Ints(res)
	seeds := s.Seeds
	if len(seeds) == 0 {
		seeds = []uint64{0} // the sweep's seed
	}
	var out []Combination
	for _, m := range s.Models {
		for _, r := range res {
			for _, seed := range seeds {
				out = append(out, Combination{Model: m, Resolution: r, Seed: seed})
			}
		}
	}
	return out
}

// Config is the full training config of one combination (without the data
// set's content hash, which a worker stamps in).
func (s Spec) Config(c Combination) Config {
	seed := s.Seed
	if c.Seed != 0 {
		seed = c.Seed
	}
	return Config{Model: c.Model, Resolution: c.Resolution, Epochs: s.Epochs, Hyper: s.Hyper.Hyper,
		Seed: seed, Data: s.Data, TrainLimit: s.TrainLimit, ValLimit: s.ValLimit,
		Augment: s.Augment, SkipBadImages: s.SkipBadImages, Patience: s.Patience, Init: s.Init.config(c.Model, c.Resolution),
		MicroBatch: s.microBatchOf(c.Model), Decoder: configDecoder(s.Decoder), Script: s.scriptOf(c.Model)}
}

// configDecoder is a config's Decoder for the spec's choice: omitted for
// the default.
func configDecoder(d string) string {
	if d == dataset.DecoderTurbo {
		return ""
	}
	return d
}

// microBatchOf is the config's MicroBatch for model: the spec's
// micro-batch where it changes the result, else 0.
func (s Spec) microBatchOf(model string) int {
	if m := s.Hyper.MicroBatchFor(s.Hyper.MicroBatch); MicroBatchChangesResult(model) && m < s.Hyper.BatchSize {
		return m
	}
	return 0
}

// Torchvision as init.weights gives each model torchvision's ImageNet
// weights of its own architecture (torchvision:MODEL).
const Torchvision = "torchvision"

// config is model's training config's Init (nil: from scratch).
func (i InitSettings) config(model string, res int) *Init {
	if i.Weights == "" {
		return nil
	}
	w := i.Weights
	if w == Torchvision {
		w = Torchvision + ":" + model
	}
	// A per-combination source: each training starts from its own file,
	// e.g. the Python tool's checkpoints/{family}/{model}/{res}/best_model.pt.
	// (The file's SHA-256, not its name, is the training's identity.)
	w = strings.NewReplacer("{family}", FamilyOf(model), "{model}", model, "{res}", strconv.Itoa(res)).Replace(w)
	return &Init{Weights: w, LRScale: i.LRScale, FreezeEpochs: i.FreezeEpochs, BatchNorm: i.BatchNorm}
}

// Validate names the first invalid field. It is pure, so workflows call it.
func (s Spec) Validate() error { return s.validate(true) }

func (s Spec) validate(today bool) error {
	// In this order: the first invalid field is the one named.
	for _, check := range []func() error{s.checkNames, s.checkLists, func() error { return s.checkResolutions(today) },
		s.checkTraining, func() error { return s.checkInit(today) }, s.checkServices} {
		if err := check(); err != nil {
			return err
		}
	}
	for _, c := range s.Combinations() {
		if err := s.Config(c).Validate(); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, c.ID(), strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
	}
	return nil
}

// badField says that a spec's field is invalid, and why.
func badField(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// checkNames checks the decoder, the name and continue_as_new_after.
func (s Spec) checkNames() error {
	if err := dataset.CheckDecoderName(s.Decoder); err != nil {
		return badField("decoder", "%q, want %s (the default) or %s", s.Decoder, dataset.DecoderTurbo, dataset.DecoderGo)
	}
	// The name is a folder of the store and part of workflow IDs.
	if s.Name == "" || s.Name == "." || s.Name == ".." || strings.ContainsAny(s.Name, "/\\ \t\n@") {
		return badField("name", "%q must be non-empty, not . or .., without spaces, '/', '\\' or '@'", s.Name)
	}
	if s.ContinueAsNewAfter < 1 {
		return badField("continue_as_new_after", "%d, want >= 1", s.ContinueAsNewAfter)
	}
	return nil
}

// checkLists checks models (known, each once, scripts), resolutions
// (some) and seeds.
func (s Spec) checkLists() error {
	if len(s.Models) == 0 {
		return badField("models", "empty: name at least one model")
	}
	if len(s.Resolutions) == 0 {
		return badField("resolutions", "empty: name at least one resolution")
	}
	seen := map[string]bool{}
	for _, m := range s.Models {
		if _, err := LookupModel(m); err != nil {
			return badField("models", "%v", err)
		}
		if seen[m] {
			return badField("models", "%s listed twice", m)
		}
		seen[m] = true
	}
	if err := s.checkScripts(); err != nil {
		return err
	}
	return s.checkSeeds()
}

// checkResolutions checks test resolutions (within the bound of today's
// rules, or the recorded ones') and that no resolution is listed twice.
func (s Spec) checkResolutions(today bool) error {
	maxTest := MaxResolution
	if !today {
		maxTest = 4096 // the bound as recorded sweeps ran it (a size past MaxResolution was skipped)
	}
	for _, r := range s.TestResolutions {
		if r < 1 || r > maxTest {
			return badField("test_resolutions", "%d, want 1..%d", r, maxTest)
		}
	}
	seenRes := map[int]bool{}
	for _, r := range s.Resolutions {
		if seenRes[r] {
			return badField("resolutions", "%d listed twice", r)
		}
		seenRes[r] = true
	}
	return nil
}

// checkTraining checks epochs, max_parallel, patience and micro-batch.
func (s Spec) checkTraining() error {
	switch {
	case s.Epochs < 1:
		return badField("epochs", "%d, want >= 1", s.Epochs)
	case s.MaxParallel < 1 || s.MaxParallel > 1000:
		return badField("max_parallel", "%d, want 1..1000", s.MaxParallel)
	case s.Patience < 0:
		return badField("patience", "%d, want >= 0", s.Patience)
	case s.Hyper.MicroBatch < 0 || s.Hyper.MicroBatch > s.Hyper.BatchSize:
		return badField("hyper.micro_batch", "%d, want 0..batch_size", s.Hyper.MicroBatch)
	}
	return nil
}

// checkInit checks init for each model: its settings, and torchvision
// weights only of a model torchvision has (by today's rules, or the
// recorded ones').
func (s Spec) checkInit(today bool) error {
	if s.Init.Weights == "" {
		return nil
	}
	for _, m := range s.Models {
		c := Config{Model: m, Epochs: s.Epochs, Init: s.Init.config(m, 0)}
		if err := c.Init.check(c.Epochs); err != nil {
			return err
		}
		info, err := LookupModel(m) // an unknown model is refused below, as unknown
		noWeights := err == nil && info.Torchvision == ""
		if !today {
			noWeights = m == "smallcnn" // the rule as recorded sweeps ran it
		}
		if noWeights && c.Init.Weights == Torchvision+":"+m {
			return badField("init.weights", "torchvision has no weights of %s: give a file or an URL, or leave %s out", m, m)
		}
	}
	return nil
}

// checkServices checks the tracking URI, the price, checkpoint intervals
// and the activities' timeouts.
func (s Spec) checkServices() error {
	if u := s.Tracking.URI; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return badField("tracking.uri", "%q: want the tracking server's http(s):// address (ResoMap logs over MLflow's REST API)", u)
	}
	switch {
	case s.Cost.PerHour < 0:
		return badField("cost.per_hour", "%v, want >= 0", s.Cost.PerHour)
	case s.Checkpoint.EverySteps < 0 || s.Checkpoint.EverySeconds < 0:
		return badField("checkpoint", "intervals must be >= 0")
	case s.Activity.HeartbeatTimeoutSeconds < 1 || s.Activity.MaxAttempts < 1 || s.Activity.StickySeconds < 1:
		return badField("activity", "heartbeat_timeout_seconds, max_attempts and sticky_seconds must be >= 1")
	// Upper bounds: a dead worker costs its heartbeat timeout, and a gone
	// worker's queue holds an epoch for sticky_seconds.
	case s.Activity.HeartbeatTimeoutSeconds > 3600:
		return badField("activity.heartbeat_timeout_seconds", "%d, want at most 3600 (a dead worker is noticed only after it)", s.Activity.HeartbeatTimeoutSeconds)
	case s.Activity.StickySeconds > 600:
		return badField("activity.sticky_seconds", "%d, want at most 600 (an epoch waits that long for a gone worker)", s.Activity.StickySeconds)
	}
	return nil
}

// yamlTypeError is yaml's "line N: cannot unmarshal !!str `x` into float64".
var yamlTypeError = regexp.MustCompile("(line \\d+): cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (\\S+)")

// inFileTerms says a YAML type error in the sweep file's terms, not Go's:
// "line 5: oops is not a number".
func inFileTerms(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = yamlTypeError.ReplaceAllStringFunc(m, func(s string) string {
			p := yamlTypeError.FindStringSubmatch(s)
			what := fmt.Sprintf("%q", p[3])
			switch p[2] {
			case "seq":
				what = "a list"
			case "map":
				what = "a mapping"
			}
			return fmt.Sprintf("%s: %s is not %s", p[1], what, goTypeInFileTerms(p[4]))
		})
	}
	return errors.New(strings.Join(msgs, "; "))
}

func goTypeInFileTerms(t string) string {
	switch {
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "text"
	case strings.HasPrefix(t, "[]"):
		return "a list ([a, b])"
	case strings.HasPrefix(t, "map"), strings.HasPrefix(t, "sweep."):
		return "a mapping ({key: value})"
	}
	return "of the right kind (" + t + ")"
}
