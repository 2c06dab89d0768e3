// Command worker trains sweeps: it polls a Temporal task queue for ResoMap's
// workflows and activities. `worker prepare-data` builds data caches ahead of
// a sweep, without a server. Several workers on several machines can share
// one task queue and one checkpoint store. On SIGTERM or SIGINT it stops
// taking work, lets running epochs checkpoint, and exits: nothing is lost.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/resomap/resomap/activities"
	"github.com/resomap/resomap/engine"
	"github.com/resomap/resomap/internal/confine"
	"github.com/resomap/resomap/internal/lists"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/report"
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
	var set settings
	flag.StringVar(&set.taskQueue, "task-queue", temporalx.EnvOr("RESOMAP_TASK_QUEUE", workflows.TaskQueue), "Temporal task queue")
	flag.StringVar(&set.storeURL, "store", temporalx.EnvOr("RESOMAP_STORE", "file://state/store"), "checkpoint store: file:///dir or s3://bucket/prefix")
	flag.StringVar(&set.device, "device", temporalx.EnvOr("RESOMAP_DEVICE", "cpu"), "cpu, cuda or cuda:N")
	flag.IntVar(&set.threads, "threads", envInt("RESOMAP_THREADS"), "libtorch intra-op threads (0 = all cores; default $RESOMAP_THREADS)")
	flag.IntVar(&set.concurrency, "concurrency", 1, "trainings run at once by this worker (and held in memory between epochs)")
	flag.StringVar(&set.lib, "lib", "", "path to libresomap.so (default: $RESOMAP_LIB or build/libresomap.so)")
	flag.StringVar(&set.cacheDir, "data-cache", temporalx.EnvOr("RESOMAP_DATA_CACHE", ""), "resized data cache directory (default ~/.cache/resomap)")
	flag.BoolVar(&set.pinSlots, "pin-slots", true,
		"on a CPU, pin each training slot's thread to cores of its own when the slots' threads fit (turn off when other workers share this machine's cores)")
	flag.BoolVar(&set.amp, "bf16", true, "bf16 autocast and channels-last on CUDA")
	flag.DurationVar(&set.stopTimeout, "stop-timeout", 2*time.Minute, "how long running epochs get to checkpoint on shutdown")
	flag.BoolVar(&set.sticky, "sticky", true, "serve a queue of this worker's own, where a combination's next epoch goes first (its model stays in memory here)")
	flag.DurationVar(&set.stuckTimeout, "stuck-timeout", 30*time.Minute,
		"exit (code 75, for a supervisor to restart) when one libtorch call runs longer than this; 0 = never")
	flag.StringVar(&set.allowPaths, "allow-paths", temporalx.EnvOr("RESOMAP_ALLOW_PATHS", ""),
		"folders (':'- or ','-separated) a spec's data and weights paths must lie in (default: any path; a spec comes from anyone who can start a workflow)")
	flag.StringVar(&set.allowHosts, "allow-hosts", temporalx.EnvOr("RESOMAP_ALLOW_HOSTS", ""),
		"hosts (','-separated; .example.com for its subdomains) weights may be downloaded from (default: any)")
	flag.Int64Var(&set.weightsMaxBytes, "weights-max-bytes", pretrained.DefaultMaxBytes, "the largest weights file this worker downloads")
	flag.Int64Var(&set.weightsMinRate, "weights-min-rate", pretrained.DefaultMinRate,
		"bytes/s a weights download must move over each 2 minutes, or it is given up (a server that trickles); 0: no minimum")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(logger, set); err != nil {
		logger.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

// envInt is an integer environment variable's value, 0 when unset; one
// that is not a number stops the worker with its name.
func envInt(name string) int {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "worker: %s=%q: want a number of threads (0: all cores)\n", name, v)
		os.Exit(2)
	}
	return n
}

// settings are the worker's flags.
type settings struct {
	taskQueue, storeURL, device, lib, cacheDir string
	threads, concurrency                       int
	amp, sticky, pinSlots                      bool
	stopTimeout, stuckTimeout                  time.Duration
	allowPaths, allowHosts                     string
	weightsMaxBytes, weightsMinRate            int64
}

// confine bounds what a spec may make this worker read and fetch; an
// allow-list entry it cannot read stops the worker.
func (set settings) confine(tr *trainer.Trainer) error {
	roots := confine.Parse(set.allowPaths)
	tr.Data.Roots, tr.Weights.Roots = roots, roots
	tr.Weights.AllowHosts = lists.Strings(set.allowHosts)
	if err := pretrained.CheckAllowHosts(tr.Weights.AllowHosts); err != nil {
		return fmt.Errorf("--allow-hosts: %w", err)
	}
	if set.weightsMinRate < 0 {
		return fmt.Errorf("--weights-min-rate %d: want bytes/s >= 0 (0: no minimum)", set.weightsMinRate)
	}
	tr.Weights.MaxBytes, tr.Weights.MinRate = set.weightsMaxBytes, set.weightsMinRate
	if set.weightsMinRate == 0 {
		tr.Weights.MinRate = -1 // the Fetcher's "none"
	}
	tr.Weights.Client = pretrained.NewClient() // one pool of connections for the worker's downloads
	return nil
}

// threadsFor is libtorch's thread count: --threads, else on a CPU the
// cores shared out between the trainings run at once, as trainings with
// all the cores each would fight for them (two at once on two cores, two
// threads each, took 3.3x as long as one alone, not 2x).
func threadsFor(set settings) int {
	if set.threads > 0 || !set.onCPU() {
		return set.threads
	}
	return max(1, runtime.NumCPU()/set.concurrency)
}

// onCPU says whether the worker trains on the CPU (the default device).
func (set settings) onCPU() bool { return set.device == "" || set.device == "cpu" }

// slotsFor starts the worker's training slots. On a CPU each slot's
// thread is pinned to cores of its own when every slot's threads fit
// (engine.Slots says why) and --pin-slots is on: a worker pins as if
// the machine's cores were its own, so several workers on one machine
// would pin their first slots to the same cores. pinned lists them (""
// when not pinned).
func slotsFor(set settings, threads int) (slots *engine.Slots, pinned string, err error) {
	var cpus [][]int
	if set.pinSlots && set.onCPU() {
		if cpus, err = engine.SlotCPUs(set.concurrency, threads); err != nil {
			return nil, "", err
		}
	}
	if cpus != nil {
		pinned = fmt.Sprint(cpus)
	}
	slots, err = engine.NewSlots(set.concurrency, cpus)
	return slots, pinned, err
}

func run(logger *slog.Logger, set settings) error {
	if set.concurrency < 1 {
		return fmt.Errorf("--concurrency must be >= 1")
	}
	// Until the worker runs, SIGTERM or SIGINT ends the waits below.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	tr, err := trainer.New(set.lib, set.device, threadsFor(set))
	if err != nil {
		return err
	}
	tr.Logger = logger
	tr.Data.CacheDir = set.cacheDir
	if err := set.confine(tr); err != nil {
		return err
	}
	tr.UseFastGPUPaths(set.amp)
	if set.stuckTimeout > 0 {
		go watchForStuckCalls(logger, tr.Lib, set.stuckTimeout)
	}
	st, err := openStore(ctx, logger, set.storeURL)
	if err != nil {
		return err
	}
	c, err := dialTemporal(ctx, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	stop()
	resident := engine.NewResidents(set.concurrency)
	defer resident.Close()
	slots, pinned, err := slotsFor(set, tr.Lib.Threads())
	if err != nil {
		return err
	}
	acts := &activities.Activities{Engine: &engine.Engine{Trainer: tr, Slots: slots, Residents: resident}, Store: st, Logger: logger, Temporal: c,
		Report: report.WriteFolder}
	logger.Info("worker started", "task_queue", set.taskQueue, "store", st.URL(), "device", set.device,
		"torch", tr.Lib.TorchVersion(), "threads", tr.Lib.Threads(), "slots", set.concurrency, "slot_cores", pinned, "pid", os.Getpid(),
		"allow_paths", cmp.Or(set.allowPaths, "any"), "allow_hosts", cmp.Or(set.allowHosts, "any"))
	return serve(c, acts, set)
}

// serve runs the worker on the shared task queue and, with set.sticky, on
// a queue of its own until SIGINT or SIGTERM.
func serve(c client.Client, acts *activities.Activities, set settings) error {
	opts := worker.Options{MaxConcurrentActivityExecutionSize: set.concurrency, WorkerStopTimeout: set.stopTimeout}
	if set.sticky {
		// A combination's next epoch comes here first, where its model is
		// resident (Temporal's sticky-activity pattern).
		acts.WorkerQueue = ownQueue(set.taskQueue)
		own := worker.New(c, acts.WorkerQueue, worker.Options{
			MaxConcurrentActivityExecutionSize: set.concurrency, WorkerStopTimeout: set.stopTimeout, DisableWorkflowWorker: true,
		})
		own.RegisterActivity(acts)
		if err := own.Start(); err != nil {
			return fmt.Errorf("start worker on its own queue %s: %w", acts.WorkerQueue, err)
		}
		defer own.Stop()
		acts.Logger.Info("serving this worker's own queue too", "queue", acts.WorkerQueue)
	}
	w := worker.New(c, set.taskQueue, opts)
	w.RegisterWorkflow(workflows.Sweep)
	w.RegisterWorkflow(workflows.Combination)
	w.RegisterActivity(acts)
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
