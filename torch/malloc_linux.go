//go:build linux

package torch

import (
	"os"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// glibc's mallopt parameters (malloc.h).
const (
	mTrimThreshold = -1
	mTopPad        = -2
	mMmapThreshold = -3
	mArenaMax      = -8
)

// glibcMalloc holds glibc's malloc controls, nil where the C library is
// not glibc (musl has neither).
var glibcMalloc = sync.OnceValue(func() *mallocControls {
	h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil
	}
	var c mallocControls
	defer func() {
		if recover() != nil {
			c = mallocControls{}
		}
	}()
	purego.RegisterLibFunc(&c.mallopt, h, "mallopt")
	purego.RegisterLibFunc(&c.mallocTrim, h, "malloc_trim")
	return &c
})

type mallocControls struct {
	mallopt    func(param, value int32) int32
	mallocTrim func(pad uintptr) int32
}

// keepStepMemory makes glibc keep the memory a training step frees for the
// next step. By default it hands blocks over 128 KiB to the kernel and
// back (its threshold grows only as far as the blocks it has seen freed)
// and trims an arena whose free top passes twice that, so every step
// faults its activations in anew: on 2 cores, resnet18 at 32 px spent 15%
// of its time in the kernel clearing pages and trained at 430 images/s,
// against 527 with these settings (and PyTorch's 527 from Python, whose
// main-thread arena is less affected). Blocks up to 32 MiB (glibc's most)
// now come from the arenas, which are never trimmed while training (a
// closed model trims them: releaseFreedMemory); a top pad of 64 MiB, since
// a thread's arena unmaps any of its 64 MiB heaps that falls wholly free,
// whatever the trim threshold (a step that drops its gradients at its end
// freed one and faulted it in again: 6,300 faults a step for resnet18);
// two arenas, as libtorch is driven from one thread per training and
// arenas multiply with threads. A GLIBC_TUNABLES that sets malloc itself
// is left alone.
func keepStepMemory() {
	c := glibcMalloc()
	if c == nil || strings.Contains(os.Getenv("GLIBC_TUNABLES"), "glibc.malloc.") {
		return
	}
	c.mallopt(mMmapThreshold, 32<<20)
	c.mallopt(mTrimThreshold, 1<<30)
	c.mallopt(mTopPad, 64<<20)
	c.mallopt(mArenaMax, 2)
}

// releaseFreedMemory hands the memory the arenas hold free back to the
// kernel (after a model is freed, so a worker's memory follows the models
// it holds).
func releaseFreedMemory() {
	if c := glibcMalloc(); c != nil {
		c.mallocTrim(0)
	}
}
