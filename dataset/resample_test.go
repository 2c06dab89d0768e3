package dataset

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The horizontal pass's fixed-count rows (taps padded with zero weights)
// give exactly what reading each output's own taps gives, for any sizes:
// shrinking and enlarging, boxes narrower than the filter, edges.
func TestPaddedTapsGiveTheSameRows(t *testing.T) {
	const seed = 19
	rng := rand.New(rand.NewPCG(seed, 0))
	for trial := 0; trial < 2000; trial++ {
		in, out := 1+rng.IntN(600), 1+rng.IntN(600)
		row := make([]byte, in*3)
		for i := range row {
			row[i] = byte(rng.IntN(256))
		}
		tp := bilinearTaps(in, out)
		want := make([]byte, out*3)
		horizontalRow(row, tp, want)
		got := make([]byte, out*3)
		horizontalPass(rgbImage{pix: row, w: in, h: 1}, box{w: in, h: 1}, 0, 1, tp, got, out)
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d trial %d: %d -> %d pixels differ from the unpadded taps", seed, trial, in, out)
		}
	}
}
