package trainer_test

import (
	"errors"
	"math/rand/v2"
	"os/exec"
	"slices"
	"testing"

	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
)

// A ViT trained at one size evaluates at another with its position
// embedding resized as torchvision's interpolate_embeddings resizes it
// (what the train x test map reads), and weights made for one size load
// into a model for another resized the same way: the two give the same
// logits, bit for bit, and torchvision's own resize gives them too.
func TestViTPositionEmbeddingFollowsTheImageSize(t *testing.T) {
	py := pythonTorch(t)
	tr := newTrainer(t, t.TempDir())
	const n, c, nc = 2, 3, 10
	model := func(size int) *torch.Model {
		m, err := tr.Lib.NewModel(torch.ModelSpec{Name: "vit_b_16", InChannels: c, NumClasses: nc, InitSeed: 5, ImageSize: size,
			Momentum: 0.9, Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	rng := rand.New(rand.NewPCG(7, 8))
	small, large := randomBatch(rng, n, c, 32, nc, true), randomBatch(rng, n, c, 64, nc, true)
	trained := model(32)
	// One step, so that the head (zeros at first, as torchvision's) is not.
	if _, _, err := trained.ForwardBackward(small, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := trained.Step(0.05); err != nil {
		t.Fatal(err)
	}
	atLarge := make([]float32, n*nc)
	if _, _, err := trained.Evaluate(large, atLarge); err != nil {
		t.Fatal(err)
	}
	export, _, err := trainer.Export(trained)
	if err != nil {
		t.Fatal(err)
	}
	wp, xp, lp := parityFiles(t, export, large.Images, atLarge)

	weights, err := pretrained.Read(wp)
	if err != nil {
		t.Fatal(err)
	}
	resized := model(64)
	if err := trainer.LoadPretrained(resized, weights, ""); err != nil {
		t.Fatal(err)
	}
	for _, ti := range resized.Tensors() {
		if ti.Name == sweep.PositionEmbedding && !slices.Equal(ti.Shape, []int64{1, 17, 768}) {
			t.Fatalf("%s at 64 px is %v, want [1 17 768]", ti.Name, ti.Shape)
		}
	}
	loaded := make([]float32, n*nc)
	if _, _, err := resized.Evaluate(large, loaded); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(loaded, atLarge) {
		t.Fatalf("at 64 px, the 32 px model gives %v, its weights loaded resized %v", atLarge, loaded)
	}
	if slices.Equal(atLarge, make([]float32, n*nc)) {
		t.Fatal("the logits are all zero: the comparison says nothing")
	}
	out, err := exec.Command(py, "testdata/vit_resize.py", wp, "64", xp, lp, "2", "3", "10", "0.5", "0.25").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("torchvision's interpolate_embeddings disagrees: %v", err)
	}

	// Shapes a hostile weights file could declare are refused in one line.
	index := map[string]int{}
	for i, ti := range resized.Tensors() {
		index[ti.Name] = i
	}
	pe := index[sweep.PositionEmbedding]
	for _, tc := range []struct {
		at    int
		shape []int64
		bytes int
	}{
		{pe, []int64{}, 4}, // no dimensions
		{pe, []int64{1, 6004799503160662, 768}, 2048},           // its byte count overflows to 2048
		{pe, []int64{1, 1, 768}, 4 * 768},                       // no grid
		{pe, []int64{1, 6, 768}, 4 * 6 * 768},                   // not a square grid
		{pe, []int64{1, 5, 768}, 4 * 5 * 768 / 2},               // too few bytes
		{pe, []int64{1, 5, 512}, 4 * 5 * 512},                   // another width
		{index["class_token"], []int64{1, 2, 768}, 4 * 2 * 768}, // not resizable
		{len(index), []int64{1, 5, 768}, 4 * 5 * 768},           // no such tensor
	} {
		if err := resized.WriteTensorResized(tc.at, tc.shape, make([]byte, tc.bytes)); !errors.Is(err, torch.ErrInvalid) {
			t.Errorf("resize %v in %d bytes: %v, want ErrInvalid", tc.shape, tc.bytes, err)
		}
	}
	if err := resized.WriteTensorResized(pe, []int64{1, 5, 768}, make([]byte, 4*5*768)); err != nil {
		t.Errorf("a 2x2 grid into 4x4: %v", err)
	}

	// A size that is no multiple of the patches is refused, by the model
	// table and by the bridge alike.
	info, _ := sweep.LookupModel("vit_b_16")
	if err := info.CheckResolution(40); !errors.Is(err, sweep.ErrInvalid) {
		t.Fatalf("CheckResolution(40) = %v, want ErrInvalid", err)
	}
	if _, _, err := trained.Evaluate(randomBatch(rng, n, c, 40, nc, true), nil); !errors.Is(err, torch.ErrInvalid) {
		t.Fatalf("a ViT evaluated at 40 px: %v, want ErrInvalid", err)
	}
	if _, err := tr.Lib.NewModel(torch.ModelSpec{Name: "vit_b_16", InChannels: c, NumClasses: nc, ImageSize: 40,
		Mean: []float32{0.5, 0.5, 0.5}, Std: []float32{0.25, 0.25, 0.25}}); !errors.Is(err, torch.ErrInvalid) {
		t.Fatalf("a ViT for 40 px: %v, want ErrInvalid", err)
	}
}
