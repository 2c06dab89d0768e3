package trainer

import "runtime/debug"

// ReleaseMemory collects now and hands the Go heap's free memory back to
// the kernel. Call it when a checkpoint's bytes (1 GB for vgg11 with
// momentum) have just become garbage: the Go heap's next collection is
// paced by the Go heap alone (twice what was live at the last one), so
// without it they stay resident while libtorch, outside the Go heap,
// allocates the next step's gradients or another training's model. A
// collection takes milliseconds: the data sets are mapped outside the Go
// heap.
func ReleaseMemory() { debug.FreeOSMemory() }
