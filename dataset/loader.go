package dataset

import (
	"context"
	"math/rand/v2"
)

// Batch is a set of images (NCHW uint8) and labels: what the loader makes
// and what the libtorch binding trains on.
type Batch struct {
	Step    int // step of the epoch it belongs to
	Images  []byte
	Labels  []int64
	C, H, W int
}

// Augment configures training-time augmentation.
type Augment struct {
	CropPadding int  // CIFAR recipe: random crop after zero-padding by this many pixels (0 = off)
	Flip        bool // random horizontal flip
	// Workers assemble batches in parallel (default 1); the batches and
	// their order do not depend on it.
	Workers int
}

// EpochOrder is the permutation of the training split for one epoch; it
// depends only on the seed, so a resumed epoch visits the same images.
func EpochOrder(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, 0x5eed)).Perm(n)
}

// StepsPerEpoch is the number of full batches (the last partial one is dropped
// so every step has the same batch size).
func StepsPerEpoch(n, batch int) int { return n / batch }

// Batches assembles training batches from step start onwards, a few steps
// ahead of the consumer: aug.Workers goroutines each assemble whole batches
// (step k by worker k mod Workers) and they are handed out in step order.
// stepSeed gives each step's augmentation seed, so a batch's content depends
// only on it. The channel closes after the epoch's last step or when ctx
// ends.
func Batches(ctx context.Context, s Split, order []int, batch, start int, aug Augment, stepSeed func(step int) uint64) <-chan Batch {
	out := make(chan Batch, 2)
	steps := StepsPerEpoch(len(order), batch)
	workers := max(aug.Workers, 1)
	lanes := make([]chan Batch, workers)
	for w := range lanes {
		lanes[w] = make(chan Batch, 1)
		go func(w int) {
			defer close(lanes[w])
			var scratch cropScratch
			for step := start + w; step < steps; step += workers {
				b := assemble(s, order[step*batch:(step+1)*batch], aug, stepSeed(step), &scratch)
				b.Step = step
				select {
				case lanes[w] <- b:
				case <-ctx.Done():
					return
				}
			}
		}(w)
	}
	go func() {
		defer close(out)
		defer func() { // let every lane see the end before it blocks
			for _, l := range lanes {
				for range l {
				}
			}
		}()
		for step := start; step < steps; step++ {
			b, ok := <-lanes[(step-start)%workers]
			if !ok {
				return
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// assemble makes one batch from the images idx, augmented from seed.
func assemble(s Split, idx []int, aug Augment, seed uint64, scratch *cropScratch) Batch {
	sz := s.C * s.H * s.W
	b := Batch{Images: make([]byte, len(idx)*sz), Labels: make([]int64, len(idx)), C: s.C, H: s.H, W: s.W}
	rng := rand.New(rand.NewPCG(seed, 0xa09))
	for k, i := range idx {
		b.Labels[k] = int64(s.Label(i))
		dst := b.Images[k*sz : (k+1)*sz]
		if s.stored != nil {
			scratch.randomResizedCropFlip(s.photo(i), s.W, aug.Flip, rng, dst)
			continue
		}
		src := s.Image(i)
		dx, dy, flip := 0, 0, false
		if aug.CropPadding > 0 {
			p := aug.CropPadding
			dx, dy = rng.IntN(2*p+1)-p, rng.IntN(2*p+1)-p
		}
		if aug.Flip {
			flip = rng.IntN(2) == 1
		}
		if dx == 0 && dy == 0 && !flip {
			copy(dst, src)
			continue
		}
		shiftFlip(src, dst, s.C, s.H, s.W, dx, dy, flip)
	}
	return b
}

// cropScratch is one batch worker's reusable memory for crops.
type cropScratch struct{ crop, tmp, row []byte }

// randomResizedCropFlip writes the ImageNet recipe's training view of img
// (a random box resized to res x res, flipped half the time) into dst,
// planar.
func (c *cropScratch) randomResizedCropFlip(img rgbImage, res int, flip bool, rng *rand.Rand, dst []byte) {
	bx := randomResizedCrop(rng, img.w, img.h)
	mirror := flip && rng.IntN(2) == 1
	resampleBoxPlanar(img, bx, res, res, mirror, dst, c)
}

// shiftFlip writes src shifted by (dx,dy) (zero fill), optionally mirrored;
// the same as torchvision's RandomCrop(padding) followed by a flip.
func shiftFlip(src, dst []byte, c, h, w, dx, dy int, flip bool) {
	for ch := 0; ch < c; ch++ {
		sp, dp := src[ch*h*w:(ch+1)*h*w], dst[ch*h*w:(ch+1)*h*w]
		for y := 0; y < h; y++ {
			sy := y + dy
			row := dp[y*w : (y+1)*w]
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			for x := 0; x < w; x++ {
				sx := x + dx
				v := byte(0)
				if sx >= 0 && sx < w {
					v = sp[sy*w+sx]
				}
				if flip {
					row[w-1-x] = v
				} else {
					row[x] = v
				}
			}
		}
	}
}

// ValBatches splits the validation split into consecutive batches.
func ValBatches(s Split, batch int) []Batch {
	var out []Batch
	sz := s.C * s.H * s.W
	for lo := 0; lo < s.N; lo += batch {
		hi := min(lo+batch, s.N)
		b := Batch{Step: lo / batch, Images: s.images[lo*sz : hi*sz], Labels: make([]int64, hi-lo), C: s.C, H: s.H, W: s.W}
		for i := lo; i < hi; i++ {
			b.Labels[i-lo] = int64(s.Label(i))
		}
		out = append(out, b)
	}
	return out
}

// N is the number of images in the batch.
func (b Batch) N() int { return len(b.Labels) }
