package sweep_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/sweep"
)

// The config hash names stored checkpoints and results: a change to the
// config's fields, their order, names or defaults would orphan every stored
// training. These hashes were recorded before any such change.
func TestConfigHashIsStable(t *testing.T) {
	golden, err := os.ReadFile("testdata/golden_config.json")
	if err != nil {
		t.Fatal(err)
	}
	golden = bytes.TrimSpace(golden)
	var full sweep.Config
	if err := json.Unmarshal(golden, &full); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(full); !bytes.Equal(b, golden) {
		t.Errorf("config JSON changed:\n got %s\nwant %s", b, golden)
	}
	if h := full.Hash(); h != "2d27c7db40b33282d7d72b7fe248d330c88ada63b3687a617d377aa50793a30d" {
		t.Errorf("hash of the full golden config is %s", h)
	}

	// The default preset's config, defaults applied as a sweep applies them.
	s, err := sweep.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config(sweep.Combination{Model: "smallcnn", Resolution: 32})
	c.DataHash = "0123456789abcdef"
	want := `{"model":"smallcnn","resolution":32,"epochs":3,"batch_size":64,"optimizer":"sgd","lr":0.1,"momentum":0.9,"nesterov":true,"weight_decay":0.0005,"schedule":"cosine","warmup_epochs":0.2,"min_lr":0,"label_smoothing":0.05,"crop_padding":2,"flip":true,"seed":1,"data":"fashion-mnist","data_hash":"0123456789abcdef","train_limit":12000,"val_limit":2000}`
	if b, _ := json.Marshal(c); string(b) != want {
		t.Errorf("default preset config JSON changed:\n got %s\nwant %s", b, want)
	}
	if h := c.Hash(); h != "cb943481753598f52a41393f4cdcb922f6b0c67c5c1e8d3a4d583875feaede6e" {
		t.Errorf("hash of the default preset's smallcnn@32 config is %s", h)
	}

	// Preparing settles the recipe: Fashion-MNIST's is CIFAR's, which
	// names a training as before recipes were named.
	if h := c.WithAugment(dataset.AugmentCIFAR).Hash(); h != "cb943481753598f52a41393f4cdcb922f6b0c67c5c1e8d3a4d583875feaede6e" {
		t.Errorf("hash with the CIFAR recipe named is %s", h)
	}
	// The ImageNet recipe names another training (and clears crop_padding).
	in := c.WithAugment(dataset.AugmentImageNet)
	in.SkipBadImages = true
	wantIn := strings.Replace(want, `"crop_padding":2`, `"crop_padding":0`, 1)
	wantIn = strings.TrimSuffix(wantIn, "}") + `,"augment":"imagenet","skip_bad_images":true}`
	if b, _ := json.Marshal(in); string(b) != wantIn {
		t.Errorf("ImageNet recipe config JSON:\n got %s\nwant %s", b, wantIn)
	}
	if h := in.Hash(); h != "d4a415352e290a7748bed4053f261e1f95831baa7f5c4c58b2eb06a6699a4d41" {
		t.Errorf("hash of the ImageNet recipe config is %s", h)
	}
}

// Early stopping changes a training's result, so it names it: a config
// early-stopped by one sweep is never reused by a sweep without patience.
// Off, it leaves the config (and its hash) as it was.
func TestPatienceNamesTheTraining(t *testing.T) {
	s, err := sweep.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	off := s.Config(sweep.Combination{Model: "smallcnn", Resolution: 32})
	s.Patience = 2
	on := s.Config(sweep.Combination{Model: "smallcnn", Resolution: 32})
	if b, _ := json.Marshal(off); strings.Contains(string(b), "patience") {
		t.Errorf("patience off shows in the config: %s", b)
	}
	if on.Hash() == off.Hash() {
		t.Error("a config with patience hashes like one without")
	}
}

// Pretrained weights name a training by their content: the same file from
// another place hashes the same, other weights or fine-tuning options do
// not, and a config without them keeps its hash (above).
func TestInitIsPartOfTheHashByContent(t *testing.T) {
	base := sweep.Config{Model: "resnet18", Resolution: 32, Epochs: 2, Hyper: sweep.Hyper{BatchSize: 8, Optimizer: "sgd", LR: 0.1, Schedule: "cosine"}}
	with := func(edit func(*sweep.Init)) string {
		c := base
		c.Init = &sweep.Init{Weights: "torchvision:resnet18", SHA256: "aa", LRScale: 1, BatchNorm: sweep.BatchNormKeep}
		edit(c.Init)
		return c.Hash()
	}
	same := with(func(*sweep.Init) {})
	if same == base.Hash() {
		t.Fatal("pretrained weights did not change the hash")
	}
	if with(func(i *sweep.Init) { i.Weights = "/data/resnet18-f37072fd.pth" }) != same {
		t.Error("the same weights from another place changed the hash")
	}
	for name, edit := range map[string]func(*sweep.Init){
		"other weights": func(i *sweep.Init) { i.SHA256 = "bb" }, "lr scale": func(i *sweep.Init) { i.LRScale = 0.1 },
		"freezing": func(i *sweep.Init) { i.FreezeEpochs = 1 }, "batchnorm": func(i *sweep.Init) { i.BatchNorm = sweep.BatchNormReestimate },
	} {
		if with(edit) == same {
			t.Errorf("%s did not change the hash", name)
		}
	}
}

// A micro-batch names the training of a model with BatchNorm (each
// micro-batch normalises over itself), and only of one: whole batches and
// VGG without BatchNorm keep their hashes.
func TestMicroBatchNamesBatchNormTrainings(t *testing.T) {
	spec := sweep.Defaults()
	spec.Name, spec.Models, spec.Resolutions = "t", []string{"smallcnn", "vgg11", "resnet18", "vgg11_bn"}, []int{32}
	hashes := func(micro int) map[string]string {
		s := spec
		s.Hyper.MicroBatch = micro
		out := map[string]string{}
		for _, c := range s.Combinations() {
			out[c.Model] = s.Config(c).Hash()
		}
		return out
	}
	whole, full, half := hashes(0), hashes(spec.Hyper.BatchSize), hashes(spec.Hyper.BatchSize/2)
	for _, m := range spec.Models {
		if whole[m] != full[m] {
			t.Errorf("%s: micro_batch = batch_size changed the hash", m)
		}
		if (whole[m] != half[m]) != sweep.MicroBatchChangesResult(m) {
			t.Errorf("%s: half-batch micro-batches changed the hash: %v; BatchNorm: %v", m, whole[m] != half[m], sweep.MicroBatchChangesResult(m))
		}
	}
	if !sweep.MicroBatchChangesResult("resnet18") || !sweep.MicroBatchChangesResult("smallcnn") || sweep.MicroBatchChangesResult("vgg16") {
		t.Error("BatchNorm models misnamed")
	}
	// ConvNeXt's stochastic-depth masks are drawn per micro-batch; a ViT
	// has neither BatchNorm nor random layers.
	if !sweep.MicroBatchChangesResult("convnext_tiny") || !sweep.MicroBatchChangesResult("regnet_y_400mf") || sweep.MicroBatchChangesResult("vit_b_16") {
		t.Error("ConvNeXt, RegNet or ViT misnamed")
	}
	if !sweep.MicroBatchChangesResult("script:net_bn") || !sweep.MicroBatchChangesResult("script:vgg11") {
		t.Error("a TorchScript model's micro-batches must name its training, whatever its name")
	}
	c := spec.Config(sweep.Combination{Model: "resnet18", Resolution: 32})
	if err := c.CheckMicroBatch(spec.Hyper.BatchSize / 2); err == nil {
		t.Error("resnet18 config of whole batches accepted half-batch micro-batches")
	}
	if err := c.CheckMicroBatch(0); err != nil {
		t.Error(err)
	}
}

// The JPEG decoder names a training whose photos it decodes: Go's decoder
// another hash than the default, libjpeg-turbo, which keeps every earlier
// config's (a spec naming it gives the config no decoder at all); an
// unknown decoder is refused.
func TestDecoderNamesTheTraining(t *testing.T) {
	s, err := sweep.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	c := sweep.Combination{Model: "smallcnn", Resolution: 32}
	plain := s.Config(c)
	s.Decoder = "libjpeg-turbo"
	turbo := s.Config(c)
	s.Decoder = "go"
	golang := s.Config(c)
	if turbo.Hash() != plain.Hash() || golang.Hash() == plain.Hash() {
		t.Errorf("hashes: default %.12s, libjpeg-turbo %.12s, go %.12s", plain.Hash(), turbo.Hash(), golang.Hash())
	}
	if b, _ := json.Marshal(turbo); strings.Contains(string(b), "decoder") {
		t.Errorf("the default decoder shows in the config: %s", b)
	}
	s.Decoder = "pil"
	if err := s.Validate(); !errors.Is(err, sweep.ErrInvalid) {
		t.Errorf("decoder pil: %v", err)
	}
}
