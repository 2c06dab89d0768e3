package dataset

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// BuildProgress reports a cache build: images made of the total, so far.
type BuildProgress struct {
	Resolution  int
	Done, Total int
	Skipped     int
	Elapsed     time.Duration
}

// Rate is images made per second so far.
func (p BuildProgress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// ETA is the time the rest will take at the rate so far.
func (p BuildProgress) ETA() time.Duration {
	r := p.Rate()
	if r == 0 {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
}

func (p BuildProgress) String() string {
	return fmt.Sprintf("building %dpx data cache: %d/%d images, %.0f img/s, ETA %s",
		p.Resolution, p.Done, p.Total, p.Rate(), p.ETA().Round(time.Second))
}

// madeImage is one image as the cache stores it.
type madeImage struct {
	pix   []byte
	w, h  int // stored size (ImageNet recipe's training images)
	label uint16
	sums  channelSums
	side  int // the source image's shorter side
	err   error
}

// maker makes image i of a split.
type maker func(i int) madeImage

// builder makes a source's images with every core, a chunk at a time, and
// streams them into a cache file in order.
type builder struct {
	opts    Options
	res     int
	started time.Time
	total   int
	done    int
	skipped []string
}

func (b *builder) workers() int {
	if b.opts.Workers > 0 {
		return b.opts.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// split makes n images with mk and adds them to cw. A bad image (ErrBadData)
// fails the build naming its file, or is skipped and counted when
// SkipBadImages is set; any other error (I/O) fails the build, to be
// retried.
func (b *builder) split(cw *cacheWriter, n int, train bool, mk maker) error {
	chunk := 4 * b.workers()
	made := make([]madeImage, chunk)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		b.makeChunk(made[:hi-lo], lo, mk)
		for _, m := range made[:hi-lo] {
			if m.err != nil {
				if !b.opts.SkipBadImages || !errors.Is(m.err, ErrBadData) {
					return m.err
				}
				b.skipped = append(b.skipped, m.err.Error())
				continue
			}
			if err := cw.add(m, train); err != nil {
				return err
			}
		}
		clear(made)
		b.done += hi - lo
		b.report()
	}
	return nil
}

// makeChunk makes images lo.. into out, in parallel.
func (b *builder) makeChunk(out []madeImage, lo int, mk maker) {
	var wg sync.WaitGroup
	w := b.workers()
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < len(out); i += w {
				out[i] = mk(lo + i)
			}
		}(k)
	}
	wg.Wait()
}

func (b *builder) report() {
	if b.opts.Progress != nil {
		b.opts.Progress(BuildProgress{Resolution: b.res, Done: b.done, Total: b.total,
			Skipped: len(b.skipped), Elapsed: time.Since(b.started)})
	}
}

// buildCache makes the cache of src at res for the options' recipe.
func buildCache(src *source, res int, path string, opts Options) error {
	b := &builder{opts: opts, res: res, started: time.Now(), total: src.train.Len() + src.val.Len()}
	hdr := cacheHeader{Version: cacheVersion, Name: src.name, SourceHash: src.identity.Hash, Resolution: res,
		Channels: src.train.Channels(), Classes: src.classes, Augment: opts.Augment}
	trainMk, valMk, err := makers(src, res, opts)
	if err != nil {
		return err
	}
	if opts.Augment == AugmentImageNet {
		hdr.StoredSide = StoredSide(res)
	}
	b.report()
	return writeCache(path, hdr, func(cw *cacheWriter) error {
		if err := b.split(cw, src.train.Len(), true, trainMk); err != nil {
			return err
		}
		cw.hdr.TrainN = len(cw.labels)
		cw.pad8()
		cw.hdr.ValOffset = int64(cw.off)
		if err := b.split(cw, src.val.Len(), false, valMk); err != nil {
			return err
		}
		cw.hdr.ValN = len(cw.labels) - cw.hdr.TrainN
		if cw.hdr.TrainN == 0 || cw.hdr.ValN == 0 {
			return fmt.Errorf("%w: %s: %d training and %d validation images left after skipping %d bad ones",
				ErrBadData, src.name, cw.hdr.TrainN, cw.hdr.ValN, len(b.skipped))
		}
		cw.hdr.Skipped = len(b.skipped)
		cw.hdr.SkippedFiles = b.skipped[:min(len(b.skipped), maxSkippedNames)]
		return nil
	})
}

// makers are the recipe's image makers for the training and validation
// splits.
func makers(src *source, res int, opts Options) (train, val maker, err error) {
	if opts.Augment != AugmentImageNet {
		return planarMaker(src.train, res, true), planarMaker(src.val, res, false), nil
	}
	tr, ok1 := src.train.(*fileSplit)
	va, ok2 := src.val.(*fileSplit)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("%w: augment %s needs an image folder of photos; %s is IDX data (use augment %s)",
			ErrBadData, AugmentImageNet, src.name, AugmentCIFAR)
	}
	side := StoredSide(res)
	train = func(i int) madeImage {
		img, native, err := tr.photo(i, side)
		if err != nil {
			return madeImage{err: err}
		}
		if min(img.w, img.h) > side {
			w, h := shorterSideTo(img.w, img.h, side)
			pix := make([]byte, w*h*3)
			resampleBox(img, box{w: img.w, h: img.h}, w, h, pix, nil)
			img = rgbImage{pix: pix, w: w, h: h}
		}
		return madeImage{pix: img.pix, w: img.w, h: img.h, label: uint16(tr.Label(i)), sums: interleavedSums(img.pix), side: native}
	}
	val = func(i int) madeImage {
		img, native, err := va.photo(i, side)
		if err != nil {
			return madeImage{err: err}
		}
		pix, err := validationImage(img, res)
		return madeImage{pix: pix, label: uint16(va.Label(i)), side: native, err: err}
	}
	return train, val, nil
}

// validationImage is the ImageNet recipe's validation transform of img:
// Resize(StoredSide(res)) + CenterCrop(res), planar.
func validationImage(img rgbImage, res int) ([]byte, error) {
	w, h := shorterSideTo(img.w, img.h, StoredSide(res))
	resized := make([]byte, w*h*3)
	resampleBox(img, box{w: img.w, h: img.h}, w, h, resized, nil)
	c := centerCrop(w, h, res)
	crop := make([]byte, res*res*3)
	resampleBox(rgbImage{pix: resized, w: w, h: h}, c, res, res, crop, nil)
	out := make([]byte, res*res*3)
	toPlanar(crop, res, res, false, out)
	return out, nil
}

// planarMaker makes the CIFAR recipe's images: square, res x res, planar.
func planarMaker(r rawSource, res int, train bool) maker {
	return func(i int) madeImage {
		pix := make([]byte, r.Channels()*res*res)
		side, err := r.Resize(i, res, pix)
		if err != nil {
			return madeImage{err: err}
		}
		m := madeImage{pix: pix, label: uint16(r.Label(i)), side: side}
		if train {
			m.sums = planarSums(pix, r.Channels(), res*res)
		}
		return m
	}
}
