package dataset

import (
	"image"

	"golang.org/x/image/draw"
)

// resizePlanar resizes a planar C x H x W uint8 image to C x res x res with
// Catmull-Rom, which x/image widens when shrinking (antialiasing).
func resizePlanar(src []byte, c, h, w int, dst []byte, res int) {
	if h == res && w == res {
		copy(dst, src)
		return
	}
	for ch := 0; ch < c; ch++ {
		s := &image.Gray{Pix: src[ch*h*w : (ch+1)*h*w], Stride: w, Rect: image.Rect(0, 0, w, h)}
		d := &image.Gray{Pix: dst[ch*res*res : (ch+1)*res*res], Stride: res, Rect: image.Rect(0, 0, res, res)}
		draw.CatmullRom.Scale(d, d.Rect, s, s.Rect, draw.Src, nil)
	}
}

// resizeImage center-crops img to a square and resizes it to res x res,
// writing planar RGB into dst (3*res*res bytes).
func resizeImage(img image.Image, res int, dst []byte) {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	rgba := image.NewRGBA(image.Rect(0, 0, res, res))
	draw.CatmullRom.Scale(rgba, rgba.Rect, img, image.Rect(x0, y0, x0+side, y0+side), draw.Src, nil)
	plane := res * res
	for i := 0; i < plane; i++ {
		dst[i] = rgba.Pix[4*i]
		dst[plane+i] = rgba.Pix[4*i+1]
		dst[2*plane+i] = rgba.Pix[4*i+2]
	}
}
