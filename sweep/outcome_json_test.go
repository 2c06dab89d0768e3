package sweep

import (
	"encoding/json"
	"hash/fnv"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An outcome's JSON is what the workflows' histories, the results index
// and every report read: however Outcome is arranged in Go, its JSON keeps
// the names and values of testdata/golden_outcome.json, written from an
// outcome with every field set to a value made from its Go name (two
// fields that swapped keys would show), and an empty outcome keeps the
// few keys it always writes (omitempty and omitzero unchanged).
// RESOMAP_UPDATE_GOLDEN=1 rewrites the file, for a change that means to
// add a field.
func TestOutcomeJSONIsUnchanged(t *testing.T) {
	empty, err := json.Marshal(Outcome{})
	if err != nil {
		t.Fatal(err)
	}
	const wantEmpty = `{"model":"","family":"","resolution":0,"status":"","epochs":0,"epochs_done":0,"keys":{}}`
	var got0, want0 any
	json.Unmarshal(empty, &got0)
	json.Unmarshal([]byte(wantEmpty), &want0)
	if !reflect.DeepEqual(got0, want0) {
		t.Errorf("an empty outcome's JSON is %s, want %s", empty, wantEmpty)
	}

	var full Outcome
	fill(reflect.ValueOf(&full).Elem(), "")
	got, err := json.MarshalIndent(full, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/golden_outcome.json"
	if os.Getenv("RESOMAP_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("an outcome's JSON changed:\n got %s\nwant %s", got, golden)
	}
	// And what was stored reads back whole: nothing in it is left out.
	var back Outcome
	if err := json.Unmarshal(golden, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, full) {
		t.Errorf("the golden outcome reads back as\n%+v\nwant\n%+v", back, full)
	}
}

// fill sets every field under v to a value made from its path of Go field
// names, embedded structs left out: the value a field holds does not
// depend on which part of Outcome it sits in, and follows the field, not
// its JSON key.
func fill(v reflect.Value, path string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	n := 1 + int64(h.Sum32()%1000)
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, int(n%60), 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous && strings.Split(f.Tag.Get("json"), ",")[0] == "" {
				fill(v.Field(i), path) // its fields are the outcome's own in JSON
				continue
			}
			fill(v.Field(i), path+"/"+f.Name)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), path+"/"+string(rune('0'+i)))
		}
	case reflect.String:
		v.SetString(path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(n)
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(uint64(n))
	case reflect.Float64, reflect.Float32:
		v.SetFloat(float64(n) + 0.5)
	default:
		panic("fill: " + v.Kind().String() + " at " + path)
	}
}
