// Package k8s_test checks the cluster manifests against what they name:
// no cluster runs them here, so this is what can be checked without one.
package k8s_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type object = map[string]any

// manifests reads every document of every YAML file here, by kind and name.
func manifests(t *testing.T) map[string]map[string]object {
	t.Helper()
	files, _ := filepath.Glob("*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	files = append(files, "secret.yaml.example") // applied once, by hand
	out := map[string]map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		for {
			var doc object
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, name := str(doc, "kind"), str(doc, "metadata", "name")
			if str(doc, "apiVersion") == "" || kind == "" || name == "" {
				t.Fatalf("%s: a document without apiVersion, kind or metadata.name", f)
			}
			if out[kind] == nil {
				out[kind] = map[string]object{}
			}
			if out[kind][name] != nil {
				t.Fatalf("%s: %s %s twice", f, kind, name)
			}
			out[kind][name] = doc
		}
	}
	return out
}

// at walks a path of keys (strings) and indices (ints).
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(object)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

// workerFlags are the flags the worker defines (worker/main.go).
func workerFlags(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../worker/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`flag\.\w+Var\(&set\.\w+, "([a-z0-9-]+)"`).FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) < 5 {
		t.Fatalf("found %d worker flags: the pattern no longer matches worker/main.go", len(out))
	}
	return out
}

// goSource is every non-test Go file of the repository, joined.
func goSource(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "state" || strings.HasPrefix(d.Name(), ".")) && p != "../.." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			src, err := os.ReadFile(p)
			b.Write(src)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Every worker Deployment runs flags the worker has, reads settings it
// reads (RESOMAP_*; TEMPORAL_* and AWS_* are the SDKs'), from a ConfigMap
// and Secret that are here, and outlives its epochs' checkpointing on
// SIGTERM; every ScaledObject scales a Deployment here on the task queue
// that Deployment serves, at the Temporal address the workers use.
func TestManifestsNameWhatIsThere(t *testing.T) {
	all := manifests(t)
	flags, src := workerFlags(t), goSource(t)
	cfg := all["ConfigMap"]["resomap"]
	if cfg == nil || all["Secret"]["resomap-s3"] == nil {
		t.Fatal("the ConfigMap resomap or the Secret resomap-s3 is missing")
	}
	queues := map[string]string{} // deployment -> task queue
	for name, d := range all["Deployment"] {
		if str(d, "apiVersion") != "apps/v1" {
			t.Errorf("%s: apiVersion %s", name, str(d, "apiVersion"))
		}
		sel, _ := at(d, "spec", "selector", "matchLabels").(object)
		labels, _ := at(d, "spec", "template", "metadata", "labels").(object)
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s: selector %s=%v does not match the pod's labels", name, k, v)
			}
		}
		c := at(d, "spec", "template", "spec", "containers", 0)
		args, _ := at(c, "args").([]any)
		stop := 2 * time.Minute // the worker's default --stop-timeout
		for k, a := range args {
			s, _ := a.(string)
			if f, ok := strings.CutPrefix(s, "--"); ok {
				f, _, _ = strings.Cut(f, "=")
				if !slices.Contains(flags, f) {
					t.Errorf("%s: the worker has no --%s", name, f)
				}
				if f == "stop-timeout" && k+1 < len(args) {
					stop, _ = time.ParseDuration(args[k+1].(string))
				}
			}
		}
		// The worker stops its two task queues one after the other.
		grace, _ := at(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
		if time.Duration(grace)*time.Second <= 2*stop {
			t.Errorf("%s: %d s of grace for twice a %v stop timeout: epochs are killed before they checkpoint", name, grace, stop)
		}
		if at(d, "spec", "replicas") != nil {
			t.Errorf("%s: replicas set: an apply would reset what the autoscaler set", name)
		}
		envs, _ := at(c, "env").([]any)
		for _, e := range envs {
			n := str(e, "name")
			if n == "RESOMAP_TASK_QUEUE" {
				queues[name] = str(e, "value")
			}
			if strings.HasPrefix(n, "RESOMAP_") && !strings.Contains(src, `"`+n+`"`) {
				t.Errorf("%s: the worker reads no %s", name, n)
			}
		}
		for k := range at(cfg, "data").(object) {
			if strings.HasPrefix(k, "RESOMAP_") && !strings.Contains(src, `"`+k+`"`) {
				t.Errorf("ConfigMap resomap: nothing reads %s", k)
			}
		}
		envFrom, _ := at(c, "envFrom").([]any)
		if len(envFrom) == 0 {
			t.Errorf("%s: no envFrom: the worker would not know Temporal or the store", name)
		}
		for _, from := range envFrom {
			if n := str(from, "configMapRef", "name"); n != "" && all["ConfigMap"][n] == nil {
				t.Errorf("%s: no ConfigMap %s", name, n)
			}
			if n := str(from, "secretRef", "name"); n != "" && all["Secret"][n] == nil {
				t.Errorf("%s: no Secret %s", name, n)
			}
		}
		if queues[name] == "" {
			t.Errorf("%s: no RESOMAP_TASK_QUEUE", name)
		}
	}
	if len(all["ScaledObject"]) == 0 {
		t.Fatal("no ScaledObject")
	}
	for name, so := range all["ScaledObject"] {
		target := str(so, "spec", "scaleTargetRef", "name")
		if str(so, "apiVersion") != "keda.sh/v1alpha1" || all["Deployment"][target] == nil {
			t.Errorf("%s: %s scales %q, not a Deployment here", name, str(so, "apiVersion"), target)
			continue
		}
		trig := at(so, "spec", "triggers", 0)
		if str(trig, "type") != "temporal" {
			t.Errorf("%s: trigger %q, want temporal", name, str(trig, "type"))
		}
		if q := str(trig, "metadata", "taskQueue"); q != queues[target] {
			t.Errorf("%s: scales on queue %q, %s serves %q", name, q, target, queues[target])
		}
		if e := str(trig, "metadata", "endpoint"); e != str(cfg, "data", "TEMPORAL_ADDRESS") {
			t.Errorf("%s: endpoint %q, the workers' Temporal is %q", name, e, str(cfg, "data", "TEMPORAL_ADDRESS"))
		}
		if n, err := strconv.Atoi(str(trig, "metadata", "targetQueueSize")); err != nil || n < 1 {
			t.Errorf("%s: targetQueueSize %q, want a positive number as a string", name, str(trig, "metadata", "targetQueueSize"))
		}
		for _, q := range strings.Split(str(trig, "metadata", "queueTypes"), ",") {
			if !slices.Contains([]string{"workflow", "activity", "nexus"}, q) {
				t.Errorf("%s: queue type %q", name, q)
			}
		}
	}
}
