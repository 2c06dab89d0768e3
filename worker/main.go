// Command worker trains sweeps: it polls a Temporal task queue for ResoMap's
// workflows and activities. `worker prepare-data` builds data caches ahead of
// a sweep, without a server. Several workers on several machines can share
// one task queue and one checkpoint store. On SIGTERM or SIGINT it stops
// taking work, lets running epochs checkpoint, and exits: nothing is lost.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "prepare-data" {
		if err := prepareData(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "prepare-data:", err)
			os.Exit(1)
		}
		return
	}
	taskQueue := flag.String("task-queue", temporalx.EnvOr("RESOMAP_TASK_QUEUE", workflows.TaskQueue), "Temporal task queue")
	storeURL := flag.String("store", temporalx.EnvOr("RESOMAP_STORE", "file://state/store"), "checkpoint store: file:///dir or s3://bucket/prefix")
	device := flag.String("device", temporalx.EnvOr("RESOMAP_DEVICE", "cpu"), "cpu, cuda or cuda:N")
	threads := flag.Int("threads", 0, "libtorch intra-op threads (0 = all cores)")
	concurrency := flag.Int("concurrency", 1, "trainings run at once by this worker")
	lib := flag.String("lib", "", "path to libresomap.so (default: $RESOMAP_LIB or build/libresomap.so)")
	cacheDir := flag.String("data-cache", temporalx.EnvOr("RESOMAP_DATA_CACHE", ""), "resized data cache directory (default ~/.cache/resomap)")
	amp := flag.Bool("bf16", true, "bf16 autocast and channels-last on CUDA")
	stopTimeout := flag.Duration("stop-timeout", 2*time.Minute, "how long running epochs get to checkpoint on shutdown")
	stuckTimeout := flag.Duration("stuck-timeout", 30*time.Minute,
		"exit (code 75, for a supervisor to restart) when one libtorch call runs longer than this; 0 = never")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(logger, *taskQueue, *storeURL, *device, *threads, *concurrency, *lib, *cacheDir, *amp, *stopTimeout, *stuckTimeout); err != nil {
		logger.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger, taskQueue, storeURL, device string, threads, concurrency int, lib, cacheDir string, amp bool, stopTimeout, stuckTimeout time.Duration) error {
	if concurrency < 1 {
		return fmt.Errorf("--concurrency must be >= 1")
	}
	// Until the worker runs, SIGTERM or SIGINT ends the waits below.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	tr, err := trainer.New(lib, device, threads)
	if err != nil {
		return err
	}
	tr.Logger = logger
	tr.Data.CacheDir = cacheDir
	tr.UseFastGPUPaths(amp)
	if stuckTimeout > 0 {
		go watchForStuckCalls(logger, tr.Lib, stuckTimeout)
	}
	st, err := openStore(ctx, logger, storeURL)
	if err != nil {
		return err
	}
	c, err := dialTemporal(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	stop()
	w := worker.New(c, taskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: concurrency,
		WorkerStopTimeout:                  stopTimeout,
	})
	w.RegisterWorkflow(workflows.Sweep)
	w.RegisterWorkflow(workflows.Combination)
	resident := activities.NewResidents(concurrency)
	defer resident.Close()
	acts := &activities.Activities{Trainer: tr, Store: st, Logger: logger, Temporal: c, Resident: resident,
		WorkerQueue: ownQueue(taskQueue), Slots: make(chan struct{}, concurrency)}
	w.RegisterActivity(acts)
	// The worker's own queue: a combination's next epoch comes here first,
	// where its model is resident (Temporal's sticky-activity pattern).
	own := worker.New(c, acts.WorkerQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: concurrency,
		WorkerStopTimeout:                  stopTimeout,
		DisableWorkflowWorker:              true,
	})
	own.RegisterActivity(acts)
	if err := own.Start(); err != nil {
		return fmt.Errorf("start worker on its own queue %s: %w", acts.WorkerQueue, err)
	}
	defer own.Stop()
	logger.Info("worker started", "task_queue", taskQueue, "own_queue", acts.WorkerQueue, "store", st.URL(), "device", device,
		"torch", tr.Lib.TorchVersion(), "threads", tr.Lib.Threads(), "pid", os.Getpid())
	return w.Run(worker.InterruptCh())
}

// ownQueue names this worker process's own task queue.
func ownQueue(shared string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s-%d-%08x", shared, host, os.Getpid(), rand.Uint32())
}

// exitStuck is EX_TEMPFAIL: try again, i.e. restart this worker.
const exitStuck = 75

// watchForStuckCalls ends the process when a libtorch call has run longer
// than limit. Such a call does not return (libtorch can hang, e.g. when it
// cannot create a thread); its activity stops heartbeating and is retried
// from its last checkpoint by another worker, but this worker's slot stays
// taken until the process goes, so it goes, and its supervisor (compose's
// restart policy, systemd, Kubernetes) starts a fresh one.
func watchForStuckCalls(logger *slog.Logger, lib *torch.Lib, limit time.Duration) {
	t := time.NewTicker(min(limit/4, 10*time.Second))
	defer t.Stop()
	for range t.C {
		if since, ok := lib.OldestCall(); ok && time.Since(since) > limit {
			logger.Error("libtorch call stuck: exiting so that this worker is restarted; its activity is retried from its last checkpoint",
				"running_for", time.Since(since).Round(time.Millisecond), "limit", limit)
			os.Exit(exitStuck)
		}
	}
}
