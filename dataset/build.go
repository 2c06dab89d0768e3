package dataset

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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

// split makes n images with mk and adds them to cw, in order. A bad image
// (ErrBadData) fails the build naming its file, or is skipped and counted
// when SkipBadImages is set; any other error (I/O) fails the build, to be
// retried.
func (b *builder) split(cw *cacheWriter, n int, train bool, mk maker) error {
	ahead := makeAhead(b.workers(), n, mk)
	defer ahead.stop()
	every := 4 * b.workers() // progress reports
	for i := 0; i < n; i++ {
		m := ahead.take(i)
		if m.err != nil {
			if !b.opts.SkipBadImages || !errors.Is(m.err, ErrBadData) {
				return m.err
			}
			b.skipped = append(b.skipped, m.err.Error())
		} else if err := cw.add(m, train); err != nil {
			return err
		}
		b.done++
		if b.done%every == 0 || i == n-1 {
			b.report()
		}
	}
	return nil
}

// ahead makes a split's images on every worker while the caller writes the
// ones before: each worker takes the next image as soon as it has made
// one, at most a window of images ahead of the caller (its memory). A
// barrier per chunk instead left the cores idle while the chunk was
// written and while its slowest image was made.
type ahead struct {
	made  []chan madeImage // image i arrives on made[i%len(made)]
	slots chan struct{}    // a token per image that may be made
	quit  chan struct{}
	wg    sync.WaitGroup
}

func makeAhead(workers, n int, mk maker) *ahead {
	// Two images a worker: enough to keep making while the caller
	// writes one, and a bound on memory a data set's size does not move.
	a := &ahead{made: make([]chan madeImage, 2*workers+2), quit: make(chan struct{})}
	a.slots = make(chan struct{}, len(a.made))
	for k := range a.made {
		a.made[k] = make(chan madeImage, 1)
		a.slots <- struct{}{}
	}
	// A worker takes a token before an index, so index i is handed out
	// only after i+1 tokens were: image i-len(made), which used the same
	// channel, has been taken by then.
	var next atomic.Int64
	for range workers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				select {
				case <-a.slots:
				case <-a.quit:
					return
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				a.made[i%len(a.made)] <- mk(i) // buffered: never blocks
			}
		}()
	}
	return a
}

// take waits for image i; images are taken in order.
func (a *ahead) take(i int) madeImage {
	m := <-a.made[i%len(a.made)]
	a.slots <- struct{}{}
	return m
}

// stop ends the workers (after the image each is making) and waits for
// them.
func (a *ahead) stop() {
	close(a.quit)
	a.wg.Wait()
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
	// A worker's decoded photo and resampling rows are scratch, reused
	// for its next image: only what the cache stores is new memory. (A
	// fresh 0.5 MB photo an image kept the collector and its memory
	// clearing busy on a build's cores.)
	scratch := &sync.Pool{New: func() any { return new(photoScratch) }}
	train = func(i int) madeImage {
		sc := scratch.Get().(*photoScratch)
		defer scratch.Put(sc)
		img, native, err := tr.photo(i, side, sc.decoded)
		if err != nil {
			return madeImage{err: err}
		}
		if min(img.w, img.h) > side {
			sc.decoded = img.pix
			w, h := shorterSideTo(img.w, img.h, side)
			pix := make([]byte, w*h*3)
			sc.rows = resampleBox(img, box{w: img.w, h: img.h}, w, h, pix, sc.rows)
			img = rgbImage{pix: pix, w: w, h: h}
		} else {
			sc.decoded = nil // stored as decoded: not scratch
		}
		return madeImage{pix: img.pix, w: img.w, h: img.h, label: uint16(tr.Label(i)), sums: interleavedSums(img.pix), side: native}
	}
	val = func(i int) madeImage {
		sc := scratch.Get().(*photoScratch)
		defer scratch.Put(sc)
		img, native, err := va.photo(i, side, sc.decoded)
		if err != nil {
			return madeImage{err: err}
		}
		sc.decoded = img.pix
		return madeImage{pix: validationImage(img, res, sc), label: uint16(va.Label(i)), side: native}
	}
	return train, val, nil
}

// photoScratch is a worker's reusable memory for making one photo.
type photoScratch struct {
	decoded []byte // the decoded photo
	resized []byte // validation: before the crop
	rows    []byte // resampleBox's rows
}

// validationImage is the ImageNet recipe's validation transform of img:
// Resize(StoredSide(res)) + CenterCrop(res), planar, in a new slice.
func validationImage(img rgbImage, res int, sc *photoScratch) []byte {
	w, h := shorterSideTo(img.w, img.h, StoredSide(res))
	if cap(sc.resized) < w*h*3 {
		sc.resized = make([]byte, w*h*3)
	}
	resized := rgbImage{pix: sc.resized[:w*h*3], w: w, h: h}
	sc.rows = resampleBox(img, box{w: img.w, h: img.h}, w, h, resized.pix, sc.rows)
	// CenterCrop(res) of an image whose shorter side is res or more is a
	// plain crop: its rows go straight into the planes.
	c := centerCrop(w, h, res)
	out := make([]byte, res*res*3)
	for y := 0; y < res; y++ {
		row := resized.pix[((c.y+y)*w+c.x)*3:]
		scatterRow(row[:res*3], res, res*res, false, out[y*res:])
	}
	return out
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
