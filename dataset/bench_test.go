package dataset

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/resomap/resomap/dataset/turbojpeg"
)

// storedSplit is an in-memory ImageNet-recipe training split of n images
// of 500x375 photos stored for res (random content: the loader's cost does
// not depend on it).
func storedSplit(n, res int) Split {
	w, h := 500, 375
	if side := StoredSide(res); h > side {
		w, h = shorterSideTo(w, h, side)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s := Split{N: n, C: 3, H: res, W: res, images: make([]byte, n*w*h*3), labels: make([]uint16, n)}
	for i := range s.images {
		s.images[i] = byte(rng.Uint32())
	}
	for i := 0; i < n; i++ {
		s.stored = append(s.stored, storedImage{Off: uint64(i * w * h * 3), W: uint32(w), H: uint32(h)})
	}
	return s
}

// BenchmarkLoader: training batches per second of the ImageNet recipe
// (RandomResizedCrop + flip from the stored images) and of the CIFAR one,
// on one core (img/s/core) and on all (img/s).
func BenchmarkLoader(b *testing.B) {
	for _, res := range []int{224, 512} {
		b.Run(fmt.Sprintf("imagenet/%d", res), func(b *testing.B) {
			benchLoader(b, storedSplit(64, res), Augment{Flip: true})
		})
	}
	b.Run("cifar/224", func(b *testing.B) {
		s := Split{N: 64, C: 3, H: 224, W: 224, images: make([]byte, 64*3*224*224), labels: make([]uint16, 64)}
		benchLoader(b, s, Augment{CropPadding: 16, Flip: true})
	})
}

func benchLoader(b *testing.B, s Split, aug Augment) {
	const batch = 32
	steps := 16
	order := make([]int, steps*batch)
	for i := range order {
		order[i] = i % s.N
	}
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		aug.Workers = workers
		start := time.Now()
		images := 0
		for i := 0; i < b.N; i++ {
			for bt := range Batches(context.Background(), s, order, batch, 0, aug, func(step int) uint64 { return uint64(step) }) {
				images += bt.N()
			}
		}
		rate := float64(images) / time.Since(start).Seconds()
		if workers == 1 {
			b.ReportMetric(rate, "img/s/core")
		} else {
			b.ReportMetric(rate, fmt.Sprintf("img/s/%dcores", workers))
		}
	}
}

// BenchmarkCacheBuild: images per second per core building the ImageNet
// recipe's cache of 500x375 JPEGs (decode, resize, write), with TurboJPEG
// and with Go's decoder. RESOMAP_BENCH_PHOTOS names a folder to use
// (default: 200 made by PIL).
func BenchmarkCacheBuild(b *testing.B) {
	dir := os.Getenv("RESOMAP_BENCH_PHOTOS")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "photos")
		torchvision(b, "make", dir, "200")
	}
	dec, err := turbojpeg.Open()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		jpeg JPEGDecoder
	}{{"turbojpeg", dec}, {"go", nil}} {
		for _, res := range []int{224, 512} {
			b.Run(fmt.Sprintf("%s/%d", c.name, res), func(b *testing.B) {
				var images int
				start := time.Now()
				for i := 0; i < b.N; i++ {
					ds, err := Open(dir, res, Options{CacheDir: b.TempDir(), JPEG: c.jpeg, Augment: AugmentImageNet, Workers: 1})
					if err != nil {
						b.Fatal(err)
					}
					images += ds.Train.N + ds.Val.N
					ds.Close()
				}
				b.ReportMetric(float64(images)/time.Since(start).Seconds(), "img/s/core")
			})
		}
	}
}
