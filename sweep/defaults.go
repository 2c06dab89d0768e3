package sweep

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// A sweep file needs only name, models and resolutions: every other setting
// it leaves out takes the value below. They are the documented defaults,
// defined here once (listed in the README, "Using it"); a setting in the file, even a
// zero, wins.
var fileDefaults = []struct {
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
	{"hyper.schedule", func(s *Spec) { s.Hyper.Schedule = "cosine" }},
	{"hyper.warmup_epochs", func(s *Spec) { s.Hyper.WarmupEpochs = min(1, float64(max(s.Epochs, 1))) }},
	{"hyper.label_smoothing", func(s *Spec) { s.Hyper.LabelSmoothing = 0.1 }},
	{"hyper.crop_padding", func(s *Spec) { s.Hyper.CropPadding = 2 }}, // CIFAR recipe only
	{"hyper.flip", func(s *Spec) { s.Hyper.Flip = true }},
	{"checkpoint.every_seconds", func(s *Spec) { s.Checkpoint.EverySeconds = 300 }},
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

// presentKeys lists the keys a YAML document sets, nested ones as a.b.
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

// applyFileDefaults sets what the file left out and returns the origins.
func applyFileDefaults(s *Spec, data []byte, source string) (Origins, error) {
	present, err := presentKeys(data)
	if err != nil {
		return nil, err
	}
	origins := Origins{}
	for k := range present {
		origins[k] = source
	}
	for _, d := range fileDefaults {
		if !present[d.key] {
			d.set(s)
			origins[d.key] = "default"
		}
	}
	return origins, nil
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
