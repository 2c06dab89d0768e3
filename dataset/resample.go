package dataset

import "math"

// The ImageNet recipe's resizes are PIL's: torchvision's Resize and
// resized_crop on PIL images call Image.resize(BILINEAR), an antialiased
// triangle filter in 22-bit fixed point, horizontal pass first with a uint8
// intermediate. resample reproduces that arithmetic so that a cache built
// here matches what a PyTorch user gets from torchvision (parity test).

const precisionBits = 32 - 8 - 2 // PIL's PRECISION_BITS for 8-bit images

// taps are one axis's filter: output i reads in[first[i] : first[i]+count[i]]
// weighted by weight[i*size:].
type taps struct {
	size         int
	first, count []int
	weight       []int32
}

// bilinearTaps computes the taps that map inSize pixels onto outSize.
func bilinearTaps(inSize, outSize int) taps {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := filterScale // the triangle filter's support is 1
	size := int(math.Ceil(support))*2 + 1
	t := taps{size: size, first: make([]int, outSize), count: make([]int, outSize), weight: make([]int32, outSize*size)}
	k := make([]float64, size)
	for o := 0; o < outSize; o++ {
		center := (float64(o) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), inSize)
		var sum float64
		for x := lo; x < hi; x++ {
			w := 1 - math.Abs((float64(x)-center+0.5)/filterScale)
			k[x-lo] = max(w, 0)
			sum += k[x-lo]
		}
		t.first[o], t.count[o] = lo, hi-lo
		for x := 0; x < hi-lo; x++ {
			if sum != 0 {
				k[x] /= sum
			}
			t.weight[o*size+x] = fixed(k[x])
		}
	}
	return t
}

// fixed rounds a weight to PIL's fixed point (half away from zero).
func fixed(w float64) int32 {
	if w < 0 {
		return int32(-0.5 + w*(1<<precisionBits))
	}
	return int32(0.5 + w*(1<<precisionBits))
}

// clip8 turns an accumulated fixed-point sum into a byte.
func clip8(v int32) byte {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// rgbImage is an interleaved RGB image (HWC, 3 bytes a pixel).
type rgbImage struct {
	pix  []byte
	w, h int
}

// box is a crop rectangle: top-left corner and size.
type box struct{ x, y, w, h int }

// resampleBox resizes the box of src to outW x outH into dst (interleaved
// RGB, outW*outH*3 bytes), as PIL's img.crop(box).resize(size, BILINEAR).
// tmp is scratch space, grown as needed and returned for reuse.
func resampleBox(src rgbImage, b box, outW, outH int, dst, tmp []byte) []byte {
	hor := b.w != outW
	ver := b.h != outH
	switch {
	case !hor && !ver:
		for y := 0; y < b.h; y++ {
			row := src.pix[((b.y+y)*src.w+b.x)*3:]
			copy(dst[y*outW*3:(y+1)*outW*3], row[:outW*3])
		}
		return tmp
	case !ver:
		horizontalPass(src, b, b.y, b.h, bilinearTaps(b.w, outW), dst, outW)
		return tmp
	}
	vt := bilinearTaps(b.h, outH)
	if !hor {
		verticalPass(src.pix[(b.y*src.w+b.x)*3:], src.w*3, vt, dst, outW)
		return tmp
	}
	// Only the rows the vertical pass reads are resized horizontally.
	first := vt.first[0]
	last := vt.first[outH-1] + vt.count[outH-1]
	need := (last - first) * outW * 3
	if cap(tmp) < need {
		tmp = make([]byte, need)
	}
	tmp = tmp[:need]
	horizontalPass(src, b, b.y+first, last-first, bilinearTaps(b.w, outW), tmp, outW)
	for i := range vt.first {
		vt.first[i] -= first
	}
	verticalPass(tmp, outW*3, vt, dst, outW)
	return tmp
}

// resampleBoxPlanar is resampleBox writing planar CHW into dst, mirrored
// when flip is set: the loader's path, one pass less than resampling and
// then reordering.
func resampleBoxPlanar(src rgbImage, b box, outW, outH int, flip bool, dst []byte, sc *cropScratch) {
	n := outW * 3
	if b.w == outW || b.h == outH {
		if len(sc.crop) != n*outH {
			sc.crop = make([]byte, n*outH)
		}
		sc.tmp = resampleBox(src, b, outW, outH, sc.crop, sc.tmp)
		toPlanar(sc.crop, outW, outH, flip, dst)
		return
	}
	vt := bilinearTaps(b.h, outH)
	first, last := vt.first[0], vt.first[outH-1]+vt.count[outH-1]
	if need := (last - first) * n; cap(sc.tmp) < need {
		sc.tmp = make([]byte, need)
	}
	tmp := sc.tmp[:(last-first)*n]
	horizontalPass(src, b, b.y+first, last-first, bilinearTaps(b.w, outW), tmp, outW)
	if len(sc.row) != n {
		sc.row = make([]byte, n)
	}
	for o := range vt.first {
		vt.first[o] -= first
		verticalRow(tmp, n, vt, o, n, sc.row)
		scatterRow(sc.row, outW, outW*outH, flip, dst[o*outW:])
	}
}

// scatterRow writes one interleaved RGB row of w pixels into a planar image
// whose planes are plane bytes apart, starting at dst (the row's place in
// the first plane).
func scatterRow(row []byte, w, plane int, flip bool, dst []byte) {
	r, g, b := dst[:w:w], dst[plane:plane+w:plane+w], dst[2*plane:2*plane+w:2*plane+w]
	for x := 0; x < w; x++ {
		d := x
		if flip {
			d = w - 1 - x
		}
		p := row[x*3 : x*3+3 : x*3+3]
		r[d], g[d], b[d] = p[0], p[1], p[2]
	}
}

// horizontalPass resizes rows [y0, y0+rows) of the box's columns to outW.
func horizontalPass(src rgbImage, b box, y0, rows int, t taps, dst []byte, outW int) {
	// Every output pixel reads the same number of taps, the few that read
	// fewer padded with zero weights (exact: integer sums), so the inner
	// loop has no branch on the count, which a fractional scale makes
	// unpredictable: 3, 3, 4, 3, ...
	k, pt := t.padded(b.w)
	for y := 0; y < rows; y++ {
		row := src.pix[((y0+y)*src.w+b.x)*3 : ((y0+y)*src.w+b.x+b.w)*3]
		out := dst[y*outW*3 : (y+1)*outW*3]
		switch k {
		case 2:
			horizontalRow2(row, pt, out)
		case 3:
			horizontalRow3(row, pt, out)
		case 4:
			horizontalRow4(row, pt, out)
		default:
			horizontalRow(row, t, out)
		}
	}
}

// padded is t with every output reading k taps, k the most any reads; k
// is 0 (no padded form) when there is no unrolled row for k (more than 4),
// the input is narrower than k, or a weight is negative.
func (t taps) padded(inSize int) (k int, p taps) {
	for _, c := range t.count {
		k = max(k, c)
	}
	if k > 4 || k > inSize || !t.nonNegative() {
		return 0, t
	}
	p = taps{size: k, first: make([]int, len(t.first)), count: make([]int, len(t.first)), weight: make([]int32, len(t.first)*k)}
	for o, first := range t.first {
		p.first[o], p.count[o] = min(first, inSize-k), k
		shift := first - p.first[o] // leading zero weights
		copy(p.weight[o*k+shift:], t.weight[o*t.size:o*t.size+t.count[o]])
	}
	return k, p
}

// nonNegative: every weight is >= 0, as the triangle filter's are. Then an
// output's sum lies in [0, 255.5 * 2^precisionBits) (the weights sum to
// 2^precisionBits give or take their rounding), so it needs no clipping,
// and the red and blue channels of a pixel can share one 64-bit multiply,
// in 32-bit lanes that do not carry into each other.
func (t taps) nonNegative() bool {
	for _, w := range t.weight {
		if w < 0 {
			return false
		}
	}
	return true
}

const half = int32(1 << (precisionBits - 1))

// redBlue is a pixel's red and blue in two 32-bit lanes, with rounding's
// half in each.
const halfPair = uint64(half) | uint64(half)<<32

func redBlue(p []byte) uint64 { return uint64(p[0]) | uint64(p[2])<<32 }

// put writes a pixel from its lanes' sums (see nonNegative).
func put(q []byte, rb uint64, g int32) {
	q[0], q[1], q[2] = byte(uint32(rb)>>precisionBits), byte(g>>precisionBits), byte(rb>>(32+precisionBits))
}

func horizontalRow2(row []byte, t taps, out []byte) {
	for o := 0; o < len(out)/3; o++ {
		j := t.first[o] * 3
		p, w := row[j:j+6:j+6], t.weight[o*2:o*2+2:o*2+2]
		rb := halfPair + redBlue(p[0:])*uint64(w[0]) + redBlue(p[3:])*uint64(w[1])
		g := half + int32(p[1])*w[0] + int32(p[4])*w[1]
		put(out[o*3:o*3+3:o*3+3], rb, g)
	}
}

func horizontalRow3(row []byte, t taps, out []byte) {
	for o := 0; o < len(out)/3; o++ {
		j := t.first[o] * 3
		p, w := row[j:j+9:j+9], t.weight[o*3:o*3+3:o*3+3]
		rb := halfPair + redBlue(p[0:])*uint64(w[0]) + redBlue(p[3:])*uint64(w[1]) + redBlue(p[6:])*uint64(w[2])
		g := half + int32(p[1])*w[0] + int32(p[4])*w[1] + int32(p[7])*w[2]
		put(out[o*3:o*3+3:o*3+3], rb, g)
	}
}

func horizontalRow4(row []byte, t taps, out []byte) {
	for o := 0; o < len(out)/3; o++ {
		j := t.first[o] * 3
		p, w := row[j:j+12:j+12], t.weight[o*4:o*4+4:o*4+4]
		rb := halfPair + redBlue(p[0:])*uint64(w[0]) + redBlue(p[3:])*uint64(w[1]) + redBlue(p[6:])*uint64(w[2]) + redBlue(p[9:])*uint64(w[3])
		g := half + int32(p[1])*w[0] + int32(p[4])*w[1] + int32(p[7])*w[2] + int32(p[10])*w[3]
		put(out[o*3:o*3+3:o*3+3], rb, g)
	}
}

// horizontalRow is any tap count's row, tap by tap.
func horizontalRow(row []byte, t taps, out []byte) {
	for o := 0; o < len(out)/3; o++ {
		w := t.weight[o*t.size : o*t.size+t.count[o]]
		in := row[t.first[o]*3:]
		r, g, bl := half, half, half
		for k, wk := range w {
			p := in[k*3 : k*3+3 : k*3+3]
			r += int32(p[0]) * wk
			g += int32(p[1]) * wk
			bl += int32(p[2]) * wk
		}
		q := out[o*3 : o*3+3 : o*3+3]
		q[0], q[1], q[2] = clip8(r), clip8(g), clip8(bl)
	}
}

// verticalPass resizes the rows of src (stride bytes apart, outW
// interleaved pixels wide) to len(t.first) rows, written by put.
func verticalPass(src []byte, stride int, t taps, dst []byte, outW int) {
	n := outW * 3
	for o := range t.first {
		verticalRow(src, stride, t, o, n, dst[o*n:(o+1)*n])
	}
}

// verticalRow computes output row o of the vertical pass into out.
func verticalRow(src []byte, stride int, t taps, o, n int, out []byte) {
	w := t.weight[o*t.size : o*t.size+t.count[o]]
	base := t.first[o] * stride
	out = out[:n]
	row := func(k int) []byte { return src[base+k*stride : base+k*stride+n : base+k*stride+n] }
	// The triangle filter's weights are >= 0, so a sum needs no clipping
	// (see nonNegative); a negative one takes the general loop.
	switch {
	case len(w) == 2 && w[0] >= 0 && w[1] >= 0:
		r0, r1 := row(0), row(1)
		r0, r1 = r0[:len(out)], r1[:len(out)]
		w0, w1 := w[0], w[1]
		for i := range out {
			out[i] = byte((half + int32(r0[i])*w0 + int32(r1[i])*w1) >> precisionBits)
		}
	case len(w) == 3 && w[0] >= 0 && w[1] >= 0 && w[2] >= 0:
		r0, r1, r2 := row(0), row(1), row(2)
		r0, r1, r2 = r0[:len(out)], r1[:len(out)], r2[:len(out)]
		w0, w1, w2 := w[0], w[1], w[2]
		for i := range out {
			out[i] = byte((half + int32(r0[i])*w0 + int32(r1[i])*w1 + int32(r2[i])*w2) >> precisionBits)
		}
	case len(w) == 4 && w[0] >= 0 && w[1] >= 0 && w[2] >= 0 && w[3] >= 0:
		r0, r1, r2, r3 := row(0), row(1), row(2), row(3)
		r0, r1, r2, r3 = r0[:len(out)], r1[:len(out)], r2[:len(out)], r3[:len(out)]
		w0, w1, w2, w3 := w[0], w[1], w[2], w[3]
		for i := range out {
			out[i] = byte((half + int32(r0[i])*w0 + int32(r1[i])*w1 + int32(r2[i])*w2 + int32(r3[i])*w3) >> precisionBits)
		}
	default:
		for i := range out {
			acc := half
			for k, wk := range w {
				acc += int32(src[base+k*stride+i]) * wk
			}
			out[i] = clip8(acc)
		}
	}
}

// shorterSideTo is torchvision's Resize(side) output size: the shorter side
// becomes side, the longer one keeps the aspect (truncated, as in Python).
func shorterSideTo(w, h, side int) (int, int) {
	if w <= h {
		return side, int(float64(side) * float64(h) / float64(w))
	}
	return int(float64(side) * float64(w) / float64(h)), side
}

// centerCrop is torchvision's CenterCrop(size) box (Python rounds halves to
// even).
func centerCrop(w, h, size int) box {
	top := int(math.RoundToEven(float64(h-size) / 2))
	left := int(math.RoundToEven(float64(w-size) / 2))
	return box{x: left, y: top, w: size, h: size}
}

// toPlanar writes interleaved RGB (w x h) as planar CHW into dst, mirrored
// left-right when flip is set.
func toPlanar(src []byte, w, h int, flip bool, dst []byte) {
	for y := 0; y < h; y++ {
		scatterRow(src[y*w*3:(y+1)*w*3], w, w*h, flip, dst[y*w:])
	}
}
