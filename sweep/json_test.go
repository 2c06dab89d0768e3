package sweep

import (
	"encoding/json"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestJSONKeepsEveryZero: a spec that sets any setting of the defaults
// table to its zero value reads back from JSON (how a spec travels to the
// workflows) with that zero, not the default.
func TestJSONKeepsEveryZero(t *testing.T) {
	for _, d := range defaults {
		for _, base := range []string{"{}", `{hyper: {optimizer: adamw, schedule: step}}`} {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(base), &doc); err != nil {
				t.Fatal(err)
			}
			doc["name"], doc["models"], doc["resolutions"] = "t", []string{"smallcnn"}, []int{16}
			s := Defaults()
			y, _ := yaml.Marshal(s)
			var all map[string]any
			_ = yaml.Unmarshal(y, &all)
			v, ok := lookupKey(all, d.key)
			if !ok {
				t.Fatalf("%s: not a YAML key of the spec", d.key)
			}
			setKeyIfAbsent(doc, d.key, reflect.Zero(reflect.TypeOf(v)).Interface())
			file, _ := yaml.Marshal(doc)
			var want Spec
			if err := yaml.Unmarshal(file, &want); err != nil {
				t.Fatal(err)
			}
			if _, err := completeFrom(&want, file, "file"); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			var got Spec
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: 0 in %s came back from JSON as\n%+v\nwant\n%+v\n(JSON %s)", d.key, base, got, want, b)
			}
		}
	}
}
