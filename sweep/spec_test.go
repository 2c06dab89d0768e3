package sweep

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestPresetsAreValid(t *testing.T) {
	for _, name := range Presets() {
		s, err := Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	s, _ := Load("resomap")
	if got := len(s.Combinations()); got != 4*5 {
		t.Fatalf("resomap preset has %d combinations", got)
	}
}

func TestCombinationsAreInStableOrder(t *testing.T) {
	s := Spec{Models: []string{"vgg11", "resnet18"}, Resolutions: []int{320, 224}}
	var ids []string
	for _, c := range s.Combinations() {
		ids = append(ids, c.ID())
	}
	if strings.Join(ids, " ") != "vgg11@224 vgg11@320 resnet18@224 resnet18@320" {
		t.Fatalf("order %v", ids)
	}
}

func TestInvalidSpecsNameTheField(t *testing.T) {
	base, _ := Load("default")
	cases := []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Models = nil }, "models: empty"},
		{func(s *Spec) { s.Models = []string{"alexnet"} }, `unknown model "alexnet"`},
		{func(s *Spec) { s.Resolutions = nil }, "resolutions: empty"},
		{func(s *Spec) { s.Resolutions = []int{16, 16} }, "resolutions: 16 listed twice"},
		{func(s *Spec) { s.Resolutions = []int{4} }, "resolution 4 out of range"},
		{func(s *Spec) { s.Epochs = 0 }, "epochs"},
		{func(s *Spec) { s.MaxParallel = -1 }, "max_parallel"},
		{func(s *Spec) { s.Hyper.LR = 0 }, "lr"},
		{func(s *Spec) { s.Hyper.MicroBatch = 1000 }, "hyper.micro_batch"},
		{func(s *Spec) { s.Name = "a/b" }, "name"},
		{func(s *Spec) { s.Name = "." }, "name"},
		{func(s *Spec) { s.Name = ".." }, "name"},
		{func(s *Spec) { s.ContinueAsNewAfter = -1 }, "continue_as_new_after"},
		{func(s *Spec) { s.Hyper.MicroBatch = -1 }, "hyper.micro_batch"},
		{func(s *Spec) { s.Patience = -1 }, "patience"},
		{func(s *Spec) { s.Activity.HeartbeatTimeoutSeconds = 3601 }, "heartbeat_timeout_seconds"},
		{func(s *Spec) { s.Activity.StickySeconds = 601 }, "sticky_seconds"},
		{func(s *Spec) { s.Checkpoint.EverySteps = -1 }, "checkpoint"},
		{func(s *Spec) { s.TrainLimit = -1 }, "train_limit"},
		{func(s *Spec) { s.Tracking.URI = "file:///tmp/mlruns" }, "tracking.uri"},
		{func(s *Spec) { s.Tracking.URI = "databricks" }, "tracking.uri"},
		{func(s *Spec) { s.Init.Weights, s.Init.LRScale = "w.pth", -1 }, "init.lr_scale"},
		{func(s *Spec) { s.Init.Weights, s.Init.FreezeEpochs = "w.pth", 99 }, "init.freeze_epochs"},
		{func(s *Spec) { s.Init.Weights, s.Init.BatchNorm = "w.pth", "update" }, "init.batchnorm"},
		{func(s *Spec) { s.Init.Weights = "torchvision" }, "torchvision has no weights of smallcnn"},
		{func(s *Spec) { s.Init.Weights = "torchvision:{model}" }, "torchvision has no weights of smallcnn"},
		{func(s *Spec) { s.Models = []string{"script:net"} }, "script:net: no file (add scripts: {net: {file: PATH}})"},
		{func(s *Spec) { s.Models = []string{"script:a/b"} }, "a TorchScript model's name"},
		{func(s *Spec) { s.Models = []string{"script:"} }, "a TorchScript model's name"},
		{func(s *Spec) {
			s.Models, s.Scripts = []string{"script:n"}, map[string]ScriptSettings{"n": {File: "n.pt", SHA256: "sha256:AB"}}
		}, "want 64 lower-case hex digits"},
	}
	for _, tc := range cases {
		s := base
		s.Models = append([]string(nil), base.Models...)
		s.Resolutions = append([]int(nil), base.Resolutions...)
		tc.edit(&s)
		err := s.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
	if _, err := Parse([]byte("name: x\nmodelz: [vgg11]\n")); err == nil || !strings.Contains(err.Error(), "modelz") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := Load("no-such"); err == nil || !strings.Contains(err.Error(), "presets: default, resomap") {
		t.Errorf("unknown preset: %v", err)
	}
}

// Which models torchvision has weights of is the registry's to say: a
// TorchScript model with init torchvision is refused as the sweep starts
// (before, only smallcnn was, by name). A sweep recorded before that
// passed it, and still does as recorded.
func TestTorchvisionWeightsByRegistry(t *testing.T) {
	s, err := Load("default")
	if err != nil {
		t.Fatal(err)
	}
	s.Models, s.Scripts = []string{"resnet18", "script:net"}, map[string]ScriptSettings{"net": {File: "/models/net.pt"}}
	s.Resolutions = []int{32, 48}
	s.Init.Weights = Torchvision
	err = s.Validate()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "torchvision has no weights of script:net") {
		t.Fatalf("Validate: %v, want torchvision has no weights of script:net", err)
	}
	if err := s.ValidateAsRecorded(); err != nil {
		t.Fatalf("ValidateAsRecorded: %v, want what it passed before", err)
	}
	s.Models = []string{"resnet18", "smallcnn"}
	for name, validate := range map[string]func() error{"Validate": s.Validate, "ValidateAsRecorded": s.ValidateAsRecorded} {
		if err := validate(); err == nil || !strings.Contains(err.Error(), "torchvision has no weights of smallcnn") {
			t.Errorf("%s: %v, want smallcnn refused as before", name, err)
		}
	}
	s.Models = []string{"resnet18", "nosuchnet"}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `unknown model "nosuchnet"`) {
		t.Errorf("an unknown model: %v, want it named unknown", err)
	}
}

// One resolution bound: test resolutions past MaxResolution are refused
// (they passed up to 4096, to be skipped, and still do as recorded).
func TestTestResolutionsHaveTheOneBound(t *testing.T) {
	s, err := Load("default")
	if err != nil {
		t.Fatal(err)
	}
	s.TestResolutions = []int{224, MaxResolution}
	if err := s.Validate(); err != nil {
		t.Fatalf("test resolutions up to %d: %v", MaxResolution, err)
	}
	s.TestResolutions = []int{224, MaxResolution + 1}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("test_resolutions: %d, want 1..%d", MaxResolution+1, MaxResolution)) {
		t.Errorf("a test resolution past the bound: %v", err)
	}
	if err := s.ValidateAsRecorded(); err != nil {
		t.Errorf("as recorded: %v, want it passed as before", err)
	}
}

// An outcome's time splits per epoch into what the epochs spent it on and
// the rest of the combination's wall time.
func TestEpochSplit(t *testing.T) {
	o := Outcome{Timings: Timings{EpochRuns: 4, TrainSeconds: 20, EvalSeconds: 2, CkptSeconds: 0.4, RestoreSeconds: 0.8, EpochSeconds: 24, WallSeconds: 25}}
	s, ok := o.EpochSplit()
	if !ok || s.Train != 5 || s.Validation != 0.5 || s.CheckpointWait != 0.1 || s.Restore != 0.2 || math.Abs(s.Other-0.45) > 1e-12 {
		t.Fatalf("split %+v", s)
	}
	if got := s.Outside(); math.Abs(got-0.75/6.25) > 1e-12 {
		t.Fatalf("outside %v", got)
	}
	o.WallSeconds, o.TestSeconds = 27, 2 // evaluation at test resolutions is no epoch's time
	if s, _ := o.EpochSplit(); math.Abs(s.Other-0.45) > 1e-12 {
		t.Fatalf("split with test evaluation %+v", s)
	}
	// Nor is building a cold data cache (once, apart from the restores).
	o.WallSeconds, o.EpochSeconds, o.CacheBuildSeconds = 31, 28, 4
	if s, _ := o.EpochSplit(); math.Abs(s.Other-0.45) > 1e-12 || s.Restore != 0.2 {
		t.Fatalf("split with a data cache build %+v", s)
	}
	o.WallSeconds, o.EpochSeconds, o.CacheBuildSeconds = 27, 24, 0
	o.WallSeconds = 0 // running: the epochs' own time
	if s, _ := o.EpochSplit(); math.Abs(s.Other-0.2) > 1e-12 {
		t.Fatalf("running split %+v", s)
	}
	if _, ok := (Outcome{}).EpochSplit(); ok {
		t.Fatal("a split before any epoch")
	}
}

// URLs with credentials are refused by CheckURLs (the starter's and
// Prepare's check), never by Validate, which replays in workflow code.
func TestURLsWithCredentialsAreRefusedOutsideValidate(t *testing.T) {
	for _, edit := range []func(*Spec){
		func(s *Spec) { s.Tracking.URI = "https://me:token@mlflow.example/" },
		func(s *Spec) { s.Init.Weights = "https://me:token@host/w.pth" },
		func(s *Spec) {
			s.Models, s.Scripts = []string{"script:net"}, map[string]ScriptSettings{"net": {File: "https://me:token@host/net.pt"}}
		},
	} {
		s := Defaults()
		s.Name, s.Models, s.Resolutions = "t", []string{"resnet18"}, []int{32}
		edit(&s)
		if err := s.Validate(); err != nil {
			t.Errorf("Validate: %v (a running sweep must replay)", err)
		}
		err := s.CheckURLs()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), "token") {
			t.Errorf("CheckURLs: %v", err)
		}
		if s.Init.Weights != "" || s.Scripts != nil {
			if err := s.Config(s.Combinations()[0]).CheckURLs(); !errors.Is(err, ErrInvalid) {
				t.Errorf("Config.CheckURLs: %v", err)
			}
		}
	}
}

// A TorchScript model's config carries its file and classifier; the
// training is named by the file's content, not its place; a config of a
// built-in model refuses a script and a script model needs one.
func TestScriptModelsConfig(t *testing.T) {
	s := Defaults()
	s.Name, s.Models, s.Resolutions = "t", []string{"script:net", "smallcnn"}, []int{16}
	s.Scripts = map[string]ScriptSettings{"net": {File: "/models/net.pt", Classifier: "fc."}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := s.Config(Combination{Model: "script:net", Resolution: 16})
	if c.Script == nil || c.Script.File != "/models/net.pt" || c.Classifier() != "fc." || FamilyOf(c.Model) != ScriptFamily {
		t.Fatalf("config %+v, classifier %q", c.Script, c.Classifier())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if cnn := s.Config(Combination{Model: "smallcnn", Resolution: 16}); cnn.Script != nil || cnn.Classifier() != "classifier.0." {
		t.Fatalf("smallcnn's config %+v", cnn.Script)
	}
	a, b := c, c
	a.Script = &Script{File: "/a/net.pt", SHA256: "ab"}
	b.Script = &Script{File: "https://host/net.pt", SHA256: "ab"}
	if a.Hash() != b.Hash() {
		t.Error("the file's place changed the training's name")
	}
	b.Script.SHA256 = "cd"
	if a.Hash() == b.Hash() {
		t.Error("the file's content did not change the training's name")
	}
	c.Script = nil
	if err := c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "needs its file") {
		t.Errorf("a script model without its file: %v", err)
	}
	c = s.Config(Combination{Model: "script:net", Resolution: 16})
	c.Script.Classifier, c.Init = "", &Init{Weights: "w.pth", FreezeEpochs: 1, BatchNorm: BatchNormKeep}
	if err := c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "freezes all") {
		t.Errorf("freezing a script model without a classifier: %v", err)
	}
	cnn := s.Config(Combination{Model: "smallcnn", Resolution: 16})
	cnn.Script = &Script{File: "x"}
	if err := cnn.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("a built-in model with a script: %v", err)
	}
}
