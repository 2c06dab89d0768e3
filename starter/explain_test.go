package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/resomap/resomap/sweep"
)

// A sweep file with only name, models and resolutions runs on documented
// defaults; explain shows every effective value and where it came from;
// an unknown field is still refused.
func TestExplainAMinimalSweepFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mini.yaml")
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn, resnet18]\nresolutions: [32, 34]\nhyper: {lr: 0.05, weight_decay: 0}\n"), 0o644)
	_, o, err := parse([]string{"explain", "--sweep", p, "--epochs", "2", "--seeds", "1,2"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := loadSpec(o)
	if err != nil {
		t.Fatalf("a minimal sweep file is refused: %v", err)
	}
	if spec.Hyper.LR != 0.05 || spec.Hyper.WeightDecay != 0 || spec.Hyper.BatchSize != 64 || spec.Epochs != 2 {
		t.Fatalf("effective spec %+v", spec.Hyper)
	}
	var out bytes.Buffer
	if err := explain(o, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`4 combinations, 8 trainings \(2 seeds each\) of 2 epochs`, `\nseeds +\[1, 2\] +flag\n`,
		`\nhyper\.lr +0\.05 +file\n`, `\nhyper\.weight_decay +0 +file\n`, `\nhyper\.batch_size +64 +default\n`,
		`\nepochs +2 +flag\n`, `\nresolutions +\[32, 34\] +file\n`, `\ndata +fashion-mnist +default\n`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [16]\nlearning_rate: 0.1\n"), 0o644)
	if err := explain(o, &out); !errors.Is(err, sweep.ErrInvalid) {
		t.Fatalf("unknown field: %v", err)
	}
	// Fashion-MNIST's images are 28 px: 64 px would measure upsampling.
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [64]\n"), 0o644)
	if _, err := loadSpec(o); !errors.Is(err, sweep.ErrInvalid) || !strings.Contains(err.Error(), "64 px is 2.3x the data's native size (28 px") {
		t.Fatalf("64 px of 28 px images: %v", err)
	}
	os.WriteFile(p, []byte("name: mini\nmodels: [smallcnn]\nresolutions: [64]\nallow_upsampling: true\n"), 0o644)
	if _, err := loadSpec(o); err != nil {
		t.Fatalf("with allow_upsampling: %v", err)
	}
}
