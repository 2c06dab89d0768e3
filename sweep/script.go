package sweep

import (
	"fmt"
	"github.com/resomap/resomap/internal/redact"
	"regexp"
	"strings"
)

// ScriptPrefix marks a TorchScript model a sweep brings: `models:
// [script:NAME]` with `scripts: {NAME: {file: PATH_OR_URL}}`. The file is
// what torch.jit.script(model).save(PATH) writes; the model trains like a
// built-in one, from the weights saved in it.
const ScriptPrefix = "script:"

// ScriptFamily is the checkpoint layout's family of every TorchScript model.
const ScriptFamily = "script"

// ScriptSettings is one TorchScript model of a spec.
type ScriptSettings struct {
	// File is a path or an http(s) URL, fetched and bounded as init
	// weights are; the training is named by its content.
	File string `yaml:"file" json:"file"`
	// Classifier is the state-dict prefix of its last layer, which
	// fine-tuning (init) leaves out ("": fine-tuning loads every layer).
	Classifier string `yaml:"classifier" json:"classifier,omitempty"`
	// SHA256, if given, pins the file's content: a file that holds
	// anything else is refused (without it, each training is named by
	// the content its Prepare found).
	SHA256 string `yaml:"sha256" json:"sha256,omitempty"`
}

// Script is a training's TorchScript model: where its file is (not in the
// hash: the same file from another place trains the same) and its
// content's SHA-256, stamped by Prepare.
type Script struct {
	File       string `json:"file"`
	SHA256     string `json:"sha256"`
	Classifier string `json:"classifier,omitempty"`
}

var (
	scriptName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	sha256Hex  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// scriptModel describes a TorchScript model by its name in a sweep; ok
// false for any other name.
func scriptModel(name string) (info ModelInfo, ok bool, err error) {
	n, ok := strings.CutPrefix(name, ScriptPrefix)
	if !ok {
		return ModelInfo{}, false, nil
	}
	if !scriptName.MatchString(n) {
		return ModelInfo{}, true, fmt.Errorf("%w: model %q: a TorchScript model's name is letters, digits, '_', '.' and '-' (at most 64)", ErrInvalid, name)
	}
	// The resolutions it takes are its code's business: a size it cannot
	// take fails its first forward, not retried.
	return ModelInfo{Name: name, Family: ScriptFamily, MinResolution: 8}, true, nil
}

// IsScript says whether model names a TorchScript model.
func IsScript(model string) bool { return strings.HasPrefix(model, ScriptPrefix) }

// scriptOf is the Script of model in a config of s (nil for a built-in).
func (s Spec) scriptOf(model string) *Script {
	n, ok := strings.CutPrefix(model, ScriptPrefix)
	if !ok {
		return nil
	}
	set := s.Scripts[n]
	return &Script{File: set.File, Classifier: set.Classifier, SHA256: set.SHA256}
}

// checkScripts refuses a TorchScript model the spec lists without a file.
func (s Spec) checkScripts() error {
	for _, m := range s.Models {
		n, ok := strings.CutPrefix(m, ScriptPrefix)
		if ok && s.Scripts[n].File == "" {
			return fmt.Errorf("%w: models: %s: no file (add scripts: {%s: {file: PATH}})", ErrInvalid, m, n)
		}
	}
	for n, set := range s.Scripts {
		if set.SHA256 != "" && !sha256Hex.MatchString(set.SHA256) {
			return fmt.Errorf("%w: scripts: %s: sha256 %q: want 64 lower-case hex digits (sha256sum's)", ErrInvalid, n, set.SHA256)
		}
	}
	return nil
}

// Classifier is the state-dict prefix of the config's last layer, which
// fine-tuning replaces ("" for a TorchScript model that names none).
func (c Config) Classifier() string {
	if c.Script != nil {
		return c.Script.Classifier
	}
	info, _ := LookupModel(c.Model)
	return info.Classifier
}

// Shown is the config as people and servers are shown it (MLflow's params,
// logs): the weights' and the script's places without credentials or a
// presigned URL's signature. The hash is the config's, not this.
func (c Config) Shown() Config {
	if c.Init != nil {
		init := *c.Init
		init.Weights = redact.URL(init.Weights)
		c.Init = &init
	}
	if c.Script != nil {
		script := *c.Script
		script.File = redact.URL(script.File)
		c.Script = &script
	}
	return c
}
