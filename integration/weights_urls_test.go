package integration

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/sweep"
)

// Two weights URLs that end in the same file name (model.safetensors) and
// serve different files: each sweep trains from its own file, and what it
// records — its config's init.sha256 (which names the training) and the
// StartedFrom its report shows — is the SHA-256 of the file its URL served.
// Before, the cache was keyed by the file name: the second sweep trained
// from the first one's weights, recorded under its own name.
func TestWeightsURLsWithOneFileNameTrainFromTheirOwnFiles(t *testing.T) {
	store, tq := t.TempDir(), "tq-urlnames"
	startWorker(t, tq, store)
	c := dial(t)
	// smallcnn weights: a one-epoch training's final model, and the same
	// with its first tensor doubled.
	seed := writeSpec(t, strings.Replace(specYAML("urlseed", "16", 256), "epochs: 2", "epochs: 1", 1))
	if out, err := starter(t, tq, store, "--sweep", seed); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	if o := result(t, c, "sweep-urlseed", 3*time.Minute).Combos[0]; o.Status != sweep.Completed {
		t.Fatalf("seed training: %s (%s)", o.Status, o.Reason)
	}
	finals := glob(t, filepath.Join(store, "runs", "*", "cnn", "smallcnn", "*", "final_model.safetensors"))
	if len(finals) != 1 {
		t.Fatalf("final models: %v", finals)
	}
	a, err := os.ReadFile(finals[0])
	if err != nil {
		t.Fatal(err)
	}
	tensors, meta, err := checkpoint.DecodeSafetensors(a)
	if err != nil || tensors[0].DType != "F32" {
		t.Fatalf("decode: %v (%s)", err, tensors[0].DType)
	}
	data := append([]byte(nil), tensors[0].Data...)
	for i := 0; i+4 <= len(data); i += 4 {
		binary.LittleEndian.PutUint32(data[i:], math.Float32bits(2*math.Float32frombits(binary.LittleEndian.Uint32(data[i:]))))
	}
	tensors[0].Data = data
	b, err := checkpoint.EncodeSafetensors(tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string][]byte{"/a/model.safetensors": a, "/b/model.safetensors": b}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)

	hashes := map[string]string{}
	for _, name := range []string{"a", "b"} {
		path := "/" + name + "/model.safetensors"
		sum := sha256.Sum256(served[path])
		want := hex.EncodeToString(sum[:])
		sweepName := "urlnames" + name
		spec := writeSpec(t, strings.Replace(specYAML(sweepName, "16", 256), "epochs: 2", "epochs: 1", 1)+
			fmt.Sprintf("init: {weights: %q}\n", srv.URL+path))
		if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
			t.Fatalf("starter %s: %v\n%s", name, err, out)
		}
		o := result(t, c, "sweep-"+sweepName, 3*time.Minute).Combos[0]
		if o.Status != sweep.Completed {
			t.Fatalf("%s: %s (%s)", sweepName, o.Status, o.Reason)
		}
		if !strings.Contains(o.StartedFrom, srv.URL+path) || !strings.Contains(o.StartedFrom, want[:12]) {
			t.Errorf("%s started from %q, want %s with sha256 %.12s", sweepName, o.StartedFrom, path, want)
		}
		if got := initSHA256(t, store, o.ConfigHash); got != want {
			t.Errorf("%s: its checkpoints' config names weights %s, the URL served %s", sweepName, got, want)
		}
		hashes[name] = o.ConfigHash
	}
	if hashes["a"] == hashes["b"] {
		t.Errorf("both sweeps trained config %.12s: one of them from the other's weights", hashes["a"])
	}
}

// initSHA256 is the init weights' SHA-256 in the config of configHash's
// checkpoint records (every record carries its config).
func initSHA256(t *testing.T, store, configHash string) string {
	t.Helper()
	sum := ""
	err := filepath.WalkDir(filepath.Join(store, "runs", configHash[:16]), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var rec struct {
			Config struct {
				Init *struct {
					SHA256 string `json:"sha256"`
				} `json:"init"`
			} `json:"config"`
		}
		if json.Unmarshal(b, &rec) == nil && rec.Config.Init != nil {
			if sum != "" && sum != rec.Config.Init.SHA256 {
				return fmt.Errorf("%s names %s, another record %s", p, rec.Config.Init.SHA256, sum)
			}
			sum = rec.Config.Init.SHA256
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum == "" {
		t.Fatalf("no checkpoint record of %.12s names its init weights", configHash)
	}
	return sum
}
