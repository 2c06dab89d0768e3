package trainer

import "runtime/debug"

// bigGarbage is the size of garbage worth handing back to the kernel at
// once: a checkpoint this large (vgg11 with momentum: 1 GB) matters to a
// worker's peak memory. Smaller ones are left to the collector's pacing: a
// collection that leaves the Go heap small made the next epochs of a
// resnet18 at 32 px up to 30% slower on 2 cores (libgomp's worker thread
// then slept and woke seven times as often; measured with
// resomap-bench --job, the mechanism not pinned down), and 90 MB of
// garbage do not move a worker's peak.
const bigGarbage = 256 << 20

// ReleaseMemory collects now and hands the Go heap's free memory back to
// the kernel, when garbage bytes (a checkpoint's, just dropped) are
// bigGarbage or more: the Go heap's next collection is paced by the Go
// heap alone (twice what was live at the last one), so without it they
// stay resident while libtorch, outside the Go heap, allocates the next
// step's gradients or another training's model. A collection takes
// milliseconds: the data sets are mapped outside the Go heap.
func ReleaseMemory(garbage int64) {
	if garbage >= bigGarbage {
		debug.FreeOSMemory()
	}
}
