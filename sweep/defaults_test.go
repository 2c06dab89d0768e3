package sweep

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// doc is a sweep file as a tree of keys.
type doc = map[string]any

func parseDoc(t *testing.T, y string) doc {
	t.Helper()
	var d doc
	if err := yaml.Unmarshal([]byte(y), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// without is d less the setting key (a.b nested), and whether d had it.
func without(d doc, key string) (doc, bool) {
	out := doc{}
	for k, v := range d {
		out[k] = v
	}
	head, rest, nested := strings.Cut(key, ".")
	if !nested {
		_, had := out[head]
		delete(out, head)
		return out, had
	}
	sub, ok := out[head].(doc)
	if !ok {
		return out, false
	}
	var had bool
	out[head], had = without(sub, rest)
	return out, had
}

// fromFileAndClient loads d as a sweep file and as the JSON another
// Temporal client would send, and fails unless both give the same spec.
func fromFileAndClient(t *testing.T, what string, d doc) Spec {
	t.Helper()
	y, _ := yaml.Marshal(d)
	fromFile, err := Parse(y)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var fromClient Spec
	if err := json.Unmarshal(j, &fromClient); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(fromFile, fromClient) {
		t.Fatalf("%s: a client's JSON gives\n%+v\nthe file gives\n%+v", what, fromClient, fromFile)
	}
	return fromFile
}

// Every setting, left out one at a time from a full sweep file, is filled
// in the same way whether the spec came from a file or as JSON from another
// client; and the file's own value wins in both.
func TestClientSpecsGetTheSettingsOfTheSameFile(t *testing.T) {
	full, err := Load("default")
	if err != nil {
		t.Fatal(err)
	}
	full.Seeds, full.TestResolutions, full.Augment, full.Cost.PerHour = []uint64{1, 2}, []int{16, 64}, "cifar", 2.5
	settings, err := Settings(full)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := yaml.Marshal(full)
	base := parseDoc(t, string(y))
	if got := fromFileAndClient(t, "the full spec", base); !reflect.DeepEqual(got, full) {
		t.Fatalf("a full spec round trip changed it:\n%+v\n%+v", got, full)
	}
	for _, s := range settings {
		d, had := without(base, s.Key)
		if !had {
			t.Errorf("setting %s is not in the spec's YAML", s.Key)
			continue
		}
		fromFileAndClient(t, "without "+s.Key, d)
	}
}

// The table names real settings, and its rule is one: a setting left out
// takes the default, a given zero wins, from a file and from a client alike.
func TestEveryDefaultHasOneRule(t *testing.T) {
	minimal := parseDoc(t, "name: x\nmodels: [smallcnn]\nresolutions: [16]\n")
	fromNothing := fromFileAndClient(t, "a minimal spec", minimal)
	defs := Defaults()
	defs.Name, defs.Models, defs.Resolutions = "x", []string{"smallcnn"}, []int{16}
	if !reflect.DeepEqual(fromNothing, defs) {
		t.Fatalf("a minimal file gives\n%+v\nDefaults gives\n%+v", fromNothing, defs)
	}
	var empty Spec
	for _, d := range defaults {
		y, _ := yaml.Marshal(minimal)
		withZero := parseDoc(t, string(y))
		setIn(withZero, d.key, valueOf(t, empty, d.key))
		got := fromFileAndClient(t, "given zero "+d.key, withZero)
		if v := valueOf(t, got, d.key); !reflect.ValueOf(v).IsZero() {
			t.Errorf("%s: given zero, got %v", d.key, v)
		}
	}
}

func setIn(d doc, key string, v any) {
	head, rest, nested := strings.Cut(key, ".")
	if !nested {
		d[head] = v
		return
	}
	sub, ok := d[head].(doc)
	if !ok {
		sub = doc{}
		d[head] = sub
	}
	setIn(sub, rest, v)
}

// valueOf reads setting key of s through its YAML form.
func valueOf(t *testing.T, s Spec, key string) any {
	t.Helper()
	y, _ := yaml.Marshal(s)
	var v any = parseDoc(t, string(y))
	for _, k := range strings.Split(key, ".") {
		m, ok := v.(doc)
		if !ok {
			t.Fatalf("no setting %s", key)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("no setting %s", key)
		}
	}
	return v
}
