package sweep

import (
	"encoding/json"
	"strings"

	"go.yaml.in/yaml/v3"
)

// defaults is every default setting of a spec, in one table with one rule:
// a setting a spec leaves out (a YAML file, or JSON from any Temporal
// client) takes the value here; a setting it gives, even a zero, wins. A
// sweep file needs only name, models and resolutions. Entries apply in
// order, so one may depend on a setting above it (the warm-up on the
// epochs, Adam's betas on the optimiser). The README lists them ("Using it").
var defaults = []struct {
	key string
	set func(*Spec)
}{
	{"epochs", func(s *Spec) { s.Epochs = 10 }},
	{"data", func(s *Spec) { s.Data = DefaultData }},
	{"seed", func(s *Spec) { s.Seed = 1 }},
	{"max_parallel", func(s *Spec) { s.MaxParallel = 1 }},
	{"hyper.batch_size", func(s *Spec) { s.Hyper.BatchSize = 64 }},
	{"hyper.optimizer", func(s *Spec) { s.Hyper.Optimizer = "sgd" }},
	{"hyper.lr", func(s *Spec) { s.Hyper.LR = 0.1 }},
	{"hyper.momentum", func(s *Spec) { s.Hyper.Momentum = 0.9 }},
	{"hyper.nesterov", func(s *Spec) { s.Hyper.Nesterov = true }},
	{"hyper.weight_decay", func(s *Spec) { s.Hyper.WeightDecay = 5e-4 }},
	{"hyper.beta1", func(s *Spec) { s.Hyper.Beta1 = ifAdamW(s, 0.9) }},
	{"hyper.beta2", func(s *Spec) { s.Hyper.Beta2 = ifAdamW(s, 0.999) }},
	{"hyper.eps", func(s *Spec) { s.Hyper.Eps = ifAdamW(s, 1e-8) }},
	{"hyper.schedule", func(s *Spec) { s.Hyper.Schedule = "cosine" }},
	{"hyper.gamma", func(s *Spec) { s.Hyper.Gamma = ifStepSchedule(s, 0.1) }},
	{"hyper.warmup_epochs", func(s *Spec) { s.Hyper.WarmupEpochs = min(1, float64(max(s.Epochs, 1))) }},
	{"hyper.label_smoothing", func(s *Spec) { s.Hyper.LabelSmoothing = 0.1 }},
	{"hyper.crop_padding", func(s *Spec) { s.Hyper.CropPadding = 2 }}, // CIFAR recipe only
	{"hyper.flip", func(s *Spec) { s.Hyper.Flip = true }},
	{"checkpoint.every_seconds", func(s *Spec) { s.Checkpoint.EverySeconds = 300 }},
	{"activity.heartbeat_timeout_seconds", func(s *Spec) { s.Activity.HeartbeatTimeoutSeconds = 60 }},
	{"activity.max_attempts", func(s *Spec) { s.Activity.MaxAttempts = 10 }},
	{"activity.sticky_seconds", func(s *Spec) { s.Activity.StickySeconds = 5 }},
	{"continue_as_new_after", func(s *Spec) { s.ContinueAsNewAfter = 200 }},
	{"init.lr_scale", func(s *Spec) { s.Init.LRScale = 1 }},
	{"init.batchnorm", func(s *Spec) { s.Init.BatchNorm = BatchNormKeep }},
	{"tracking.log_models", func(s *Spec) { s.Tracking.LogModels = true }},
	{"tracking.log_report", func(s *Spec) { s.Tracking.LogReport = true }},
}

// Settings that only apply to one optimiser or schedule default to zero
// (unset) for the others, which keeps those configs' hashes as they were.
func ifAdamW(s *Spec, v float64) float64 {
	if s.Hyper.Optimizer == "adamw" {
		return v
	}
	return 0
}

func ifStepSchedule(s *Spec, v float64) float64 {
	if s.Hyper.Schedule == "step" {
		return v
	}
	return 0
}

// complete gives s the defaults of every setting given is false for, after
// normalising what names are case-insensitive.
func complete(s *Spec, given func(key string) bool) {
	s.Hyper.Optimizer = strings.ToLower(s.Hyper.Optimizer)
	for _, d := range defaults {
		if !given(d.key) {
			d.set(s)
		}
	}
}

// Defaults is the spec of a file that gives nothing but what it must
// (name, models, resolutions): every setting at its default. Go code that
// builds a spec starts from it.
func Defaults() Spec {
	var s Spec
	complete(&s, func(string) bool { return false })
	return s
}

// Origins says where each setting of a loaded spec came from, by YAML key
// ("hyper.lr"): "preset", "file", "flag" or "default".
type Origins map[string]string

// Of is the origin of key: its own, or that of the nearest section above
// it that was given whole.
func (o Origins) Of(key string) string {
	for k := key; k != ""; k = parentKey(k) {
		if v, ok := o[k]; ok {
			return v
		}
	}
	return "default"
}

func parentKey(k string) string {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '.' {
			return k[:i]
		}
	}
	return ""
}

// presentKeys lists the keys a YAML or JSON document sets, nested ones as
// a.b (JSON is YAML to this parser).
func presentKeys(data []byte) (map[string]bool, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			out[prefix+k] = true
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", doc)
	return out, nil
}

// completeFrom gives s the defaults of what the document data (YAML or
// JSON) leaves out, and says where each setting came from.
func completeFrom(s *Spec, data []byte, source string) (Origins, error) {
	present, err := presentKeys(data)
	if err != nil {
		return nil, err
	}
	origins := Origins{}
	for k := range present {
		origins[k] = source
	}
	complete(s, func(key string) bool { return present[key] })
	for _, d := range defaults {
		if !present[d.key] {
			origins[d.key] = "default"
		}
	}
	return origins, nil
}

// UnmarshalJSON completes a spec that arrives as JSON (a workflow's input,
// from any Temporal client) by the same rule as a file: what it leaves out
// takes its default, what it gives wins.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Spec(p)
	_, err := completeFrom(s, b, "client")
	return err
}

// Setting is one effective setting of a spec, by YAML key.
type Setting struct{ Key, Value string }

// Settings lists every setting of s in the YAML layout's order, nested ones
// as a.b.
func Settings(s Spec) ([]Setting, error) {
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		return nil, err
	}
	var out []Setting
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := prefix+m.Content[i].Value, m.Content[i+1]
			if v.Kind == yaml.MappingNode {
				walk(k+".", v)
				continue
			}
			if v.Kind == yaml.SequenceNode {
				v.Style = yaml.FlowStyle
			}
			b, _ := yaml.Marshal(v)
			out = append(out, Setting{Key: k, Value: strings.TrimSpace(string(b))})
		}
	}
	walk("", &n)
	return out, nil
}

// MarshalJSON writes every setting of the defaults table, zeros included.
// A reader completes what a document leaves out with its default
// (UnmarshalJSON), so a zero dropped by omitempty would come back as the
// default: beta1: 0 as 0.9, a whole-zero tracking section with
// log_models: true.
func (s Spec) MarshalJSON() ([]byte, error) {
	type plain Spec // without this method
	b, err := json.Marshal(plain(s))
	if err != nil {
		return nil, err
	}
	doc, err := decodeObject(b, true)
	if err != nil {
		return nil, err
	}
	y, err := yaml.Marshal(plain(s)) // yaml keys are the table's and have no omitempty
	if err != nil {
		return nil, err
	}
	var all map[string]any
	if err := yaml.Unmarshal(y, &all); err != nil {
		return nil, err
	}
	for _, d := range defaults {
		if v, ok := lookupKey(all, d.key); ok {
			setKeyIfAbsent(doc, d.key, v)
		}
	}
	return json.Marshal(doc)
}

// decodeObject reads a JSON object, numbers as written (json.Number).
func decodeObject(b []byte, useNumber bool) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if useNumber {
		dec.UseNumber()
	}
	var doc map[string]any
	return doc, dec.Decode(&doc)
}

// lookupKey finds a nested key (a.b) in a decoded document.
func lookupKey(doc map[string]any, key string) (any, bool) {
	head, rest, nested := strings.Cut(key, ".")
	v, ok := doc[head]
	if !ok || !nested {
		return v, ok
	}
	sub, isMap := v.(map[string]any)
	if !isMap {
		return nil, false
	}
	return lookupKey(sub, rest)
}

// setKeyIfAbsent sets a nested key (a.b) that doc lacks, making the
// sections on the way.
func setKeyIfAbsent(doc map[string]any, key string, v any) {
	head, rest, nested := strings.Cut(key, ".")
	if !nested {
		if _, ok := doc[head]; !ok {
			doc[head] = v
		}
		return
	}
	sub, isMap := doc[head].(map[string]any)
	if !isMap {
		sub = map[string]any{}
		doc[head] = sub
	}
	setKeyIfAbsent(sub, rest, v)
}
