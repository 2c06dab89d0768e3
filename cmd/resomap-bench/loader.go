package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/dataset/turbojpeg"
	"github.com/resomap/resomap/torch"
)

// loaderVsSynthetic trains resnet18 at 224 px (bf16 + channels-last on CUDA)
// once from one synthetic batch and once from the image folder's cache with
// the ImageNet recipe, batches made by the loader's goroutines as a worker
// makes them, and prints both rates: the loader keeps up when the ratio is
// >= 0.95.
func loaderVsSynthetic(lib *torch.Lib, dir, cacheDir, device string, bs, steps int) error {
	const res, warm = 224, 5
	opts := dataset.Options{CacheDir: cacheDir, Augment: dataset.AugmentImageNet}
	if dec, err := turbojpeg.Open(); err == nil {
		opts.JPEG = dec
	}
	ds, err := dataset.Open(dir, res, opts)
	if err != nil {
		return err
	}
	defer ds.Close()
	workers := max(1, runtime.NumCPU()-2) // the trainer's default on a GPU
	amp := device != "cpu"
	order := dataset.EpochOrder(ds.Train.N, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var batches <-chan dataset.Batch
	epoch := 0
	next := func() dataset.Batch {
		for {
			if batches != nil {
				if b, ok := <-batches; ok {
					return b
				}
			}
			epoch++ // a small folder is gone through many times
			batches = dataset.Batches(ctx, ds.Train, order, bs, 0, dataset.Augment{Flip: true, Workers: workers},
				func(step int) uint64 { return uint64(epoch<<20 | step) })
		}
	}
	synthetic, err := goSteps(lib, "resnet18", res, bs, steps, warm, device, amp)
	if err != nil {
		return err
	}
	fed, err := goStepsFed(lib, "resnet18", res, bs, steps, warm, device, amp, next)
	if err != nil {
		return err
	}
	fmt.Printf("resnet18 %dpx bs%d on %s: synthetic %.0f img/s, image-folder cache + ImageNet recipe (%d loader goroutines, %d images) %.0f img/s, ratio %.2f (target >= 0.95)\n",
		res, bs, device, synthetic, workers, ds.Train.N, fed, fed/synthetic)
	return nil
}
