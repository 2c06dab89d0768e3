// Command starter starts and steers sweeps: `starter --sweep default`
// starts one; `starter help` lists every command with its flags (the
// commands table below declares them once).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/internal/lists"
	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/workflows"
)

// command is one sub-command: its usage line and the flags it takes
// (besides --store and --task-queue, which every command takes). The
// table is the one place commands are declared: usage, the unknown
// command's message and each command's flag check come from it.
type command struct {
	names []string // the first is shown in the unknown command's message
	usage string
	flags []string
}

var commands = []command{
	{[]string{"start"}, "starter --sweep NAME|FILE.yaml [--models a,b] [--resolutions 16,32] [--epochs N] [--seeds 1,2] [--data DIR] [--init WEIGHTS] [--id ID] [--wait]",
		[]string{"sweep", "id", "models", "resolutions", "epochs", "seeds", "data", "init", "wait", "out", "price-per-hour"}},
	{[]string{"explain"}, "starter explain --sweep NAME|FILE.yaml [the start command's overrides]   (every effective setting and where it came from)",
		[]string{"sweep", "models", "resolutions", "epochs", "seeds", "data", "init"}},
	{[]string{"status"}, "starter status --sweep NAME|--id ID [--combination model@res | --all | --failed]   (--all, --failed: every row, from the store)",
		[]string{"sweep", "id", "combination", "all", "failed"}},
	{[]string{"pause", "resume", "cancel"}, "starter pause|resume|cancel --sweep NAME|--id ID [--combination model@res]",
		[]string{"sweep", "id", "combination"}},
	// add starts a finished sweep again (startSweep: --wait, --out,
	// --price-per-hour), and reads a sweep the server no longer knows from
	// its spec with the start command's overrides (--data, --init, --epochs).
	{[]string{"add"}, "starter add --sweep NAME [--models a,b] [--resolutions 64,96] [--seeds 2,3] [--wait]   (grow a running sweep, or start a finished one again with the union)",
		[]string{"sweep", "id", "models", "resolutions", "seeds", "wait", "out", "price-per-hour", "data", "init", "epochs"}},
	{[]string{"list"}, "starter list", nil},
	{[]string{"report"}, "starter report --sweep NAME [--out DIR] [--watch [--watch-every 10s]] [--price-per-hour P]",
		[]string{"sweep", "id", "out", "watch", "watch-every", "price-per-hour"}},
	{[]string{"checkpoints"}, "starter checkpoints [--models a,b] [--resolutions 16,32]", []string{"models", "resolutions"}},
	{[]string{"gc"}, "starter gc [--dry-run]", []string{"dry-run"}},
	{[]string{"import"}, "starter import --dir DIR   (what a tree of the Python tool's checkpoints, DIR/{family}/{model}/{res}/best_model.pt, holds, and the init line that starts from it)",
		[]string{"dir"}},
	{[]string{"dev-server-flags"}, "", nil}, // for scripts that start a dev server
}

// commonFlags are taken by every command.
var commonFlags = []string{"store", "task-queue"}

// commandNamed is the table's entry for name.
func commandNamed(name string) (command, bool) {
	for _, c := range commands {
		if slices.Contains(c.names, name) {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range commands {
		if c.usage != "" {
			fmt.Fprintln(w, "  "+c.usage)
		}
	}
	fmt.Fprintln(w, "  (every command also takes --store URL and --task-queue NAME)")
	fmt.Fprintln(w, "presets: "+strings.Join(sweep.Presets(), ", "))
}

// commandNames lists the commands for an unknown command's message.
func commandNames() string {
	var names []string
	for _, c := range commands {
		if c.usage != "" {
			names = append(names, c.names...)
		}
	}
	return strings.Join(names, ", ")
}

// options are the flags shared by every sub-command.
type options struct {
	sweep, id, models, resolutions, seeds, data, combination, store, out, taskQueue, init, dir string
	epochs                                                                                     int
	pricePerHour                                                                               float64
	wait, dryRun, watch, all, failed                                                           bool
	watchEvery                                                                                 time.Duration
	set                                                                                        map[string]bool // flags given
}

func parse(args []string) (string, options, error) {
	cmd := "start"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var o options
	fs := flag.NewFlagSet("starter "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.sweep, "sweep", "", "preset name or YAML file")
	fs.StringVar(&o.id, "id", "", "sweep workflow ID (default sweep-<name>)")
	fs.StringVar(&o.models, "models", "", "comma-separated models (overrides the spec)")
	fs.StringVar(&o.resolutions, "resolutions", "", "comma-separated resolutions (overrides the spec)")
	fs.IntVar(&o.epochs, "epochs", 0, "epochs (overrides the spec)")
	fs.StringVar(&o.seeds, "seeds", "", "comma-separated seeds: each (model, resolution) trained once per seed (overrides the spec)")
	fs.StringVar(&o.data, "data", "", "data set: fashion-mnist, an IDX folder or an image folder")
	fs.StringVar(&o.init, "init", "", "fine-tune from pretrained weights: a .pth or .safetensors path, an URL or torchvision:NAME (overrides the spec's init.weights)")
	fs.StringVar(&o.combination, "combination", "", "one combination, model@resolution")
	fs.StringVar(&o.store, "store", temporalx.EnvOr("RESOMAP_STORE", "file://state/store"), "checkpoint store URL")
	fs.StringVar(&o.out, "out", "", "report folder (default reports/<sweep>)")
	fs.StringVar(&o.taskQueue, "task-queue", temporalx.EnvOr("RESOMAP_TASK_QUEUE", workflows.TaskQueue), "Temporal task queue")
	fs.StringVar(&o.dir, "dir", "", "import: the folder of the Python tool's checkpoints")
	fs.BoolVar(&o.wait, "wait", false, "follow the sweep with live progress until it ends")
	fs.BoolVar(&o.dryRun, "dry-run", false, "gc: list what would be deleted")
	fs.BoolVar(&o.all, "all", false, "status: a row for every combination (a large sweep shows a summary)")
	fs.BoolVar(&o.failed, "failed", false, "status: a row for every combination that ended without a result")
	fs.BoolVar(&o.watch, "watch", false, "report: rewrite the report as results arrive, until the sweep ends")
	fs.DurationVar(&o.watchEvery, "watch-every", 10*time.Second, "report --watch: how often to look for new results")
	fs.Float64Var(&o.pricePerHour, "price-per-hour", 0, "report: price of a compute hour (overrides the spec's cost.per_hour)")
	if err := fs.Parse(args); err != nil {
		return cmd, o, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		return cmd, o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c, ok := commandNamed(cmd)
	if !ok {
		return cmd, o, fmt.Errorf("%w: unknown command %q (%s)", errUsage, cmd, commandNames())
	}
	for _, f := range slices.Sorted(maps.Keys(o.set)) {
		if !slices.Contains(c.flags, f) && !slices.Contains(commonFlags, f) {
			return cmd, o, fmt.Errorf("%w: starter %s takes no --%s\nusage: %s", errUsage, cmd, f, c.usage)
		}
	}
	return cmd, o, nil
}

// loadSpec reads the named sweep and applies overrides; it is validated
// before anything starts.
func loadSpec(o options) (sweep.Spec, error) {
	spec, _, err := loadSpecWithOrigins(o)
	return spec, err
}

// loadSpecWithOrigins is loadSpec that also says where each setting came
// from (flags marked "flag").
func loadSpecWithOrigins(o options) (sweep.Spec, sweep.Origins, error) {
	if o.sweep == "" {
		return sweep.Spec{}, nil, fmt.Errorf("%w: --sweep is required (presets: %s)", sweep.ErrInvalid, strings.Join(sweep.Presets(), ", "))
	}
	spec, origins, err := sweep.LoadWithOrigins(o.sweep)
	if err != nil {
		return spec, nil, err
	}
	for flag, key := range map[string]string{"models": "models", "resolutions": "resolutions", "epochs": "epochs", "data": "data", "seeds": "seeds", "init": "init.weights"} {
		if o.set[flag] {
			origins[key] = "flag"
		}
	}
	trackingFromEnv(&spec, origins, os.Getenv)
	if spec, err = applyFlags(spec, o); err != nil {
		return spec, origins, err
	}
	return spec, origins, checkLocalData(spec)
}

// trackingFromEnv takes the tracking server and experiment from the MLflow
// client variables where the sweep file leaves them out, as every MLflow
// client does (getenv is os.Getenv outside tests). Credentials stay in the
// workers' environment: they never enter a workflow's history.
func trackingFromEnv(spec *sweep.Spec, origins sweep.Origins, getenv func(string) string) {
	if v := getenv(tracking.EnvURI); spec.Tracking.URI == "" && v != "" {
		spec.Tracking.URI, origins["tracking.uri"] = v, "env "+tracking.EnvURI
	}
	if v := getenv(tracking.EnvExperiment); spec.Tracking.Experiment == "" && v != "" {
		spec.Tracking.Experiment, origins["tracking.experiment"] = v, "env "+tracking.EnvExperiment
	}
}

// checkLocalData refuses, before anything starts, resolutions that would
// measure upsampling of the data, when the data is on this machine (workers
// check it again where it is trained).
func checkLocalData(spec sweep.Spec) error {
	native, err := dataset.NativeSide(spec.Data, dataset.Options{})
	if err != nil {
		return nil // not here: the workers' Prepare decides
	}
	for _, c := range spec.Combinations() {
		if err := spec.CheckUpsampling(c.Model, c.Resolution, native); err != nil {
			return err
		}
	}
	return nil
}

// applyFlags puts the command line's overrides into spec and validates it.
func applyFlags(spec sweep.Spec, o options) (sweep.Spec, error) {
	if o.set["models"] {
		spec.Models = lists.Strings(o.models)
		if len(spec.Models) == 0 {
			return spec, fmt.Errorf("%w: models: empty list", sweep.ErrInvalid)
		}
	}
	if o.set["resolutions"] {
		var err error
		if spec.Resolutions, err = lists.Ints("resolutions", o.resolutions); err != nil {
			return spec, fmt.Errorf("%w: %w", sweep.ErrInvalid, err)
		}
		if len(spec.Resolutions) == 0 {
			return spec, fmt.Errorf("%w: resolutions: empty list", sweep.ErrInvalid)
		}
	}
	if o.set["epochs"] {
		spec.Epochs = o.epochs
	}
	if o.set["seeds"] {
		var err error
		if spec.Seeds, err = lists.Uint64s("seeds", o.seeds); err != nil {
			return spec, fmt.Errorf("%w: %w", sweep.ErrInvalid, err)
		}
	}
	if o.set["data"] {
		spec.Data = o.data
	}
	if o.set["init"] {
		spec.Init.Weights = o.init
	}
	if err := spec.Validate(); err != nil {
		return spec, err
	}
	if err := spec.CheckURLs(); err != nil {
		return spec, err
	}
	return spec, checkLocalWeights(spec)
}

// checkLocalWeights reads every init weights file the spec names that is
// on this machine, as the workers will, and checks them against each
// model they are to start (pretrained.CheckFits, from the models' recorded
// layouts: the starter links no libtorch): a file that is no state dict (a
// whole pickled model, a truncated file) or weights of another
// architecture are refused before the sweep starts. What the data decides
// (grey images, a ViT's size) is left to Prepare. A path not here may be
// on the workers; URLs and torchvision weights are theirs to fetch.
func checkLocalWeights(spec sweep.Spec) error {
	read := map[string]map[string]checkpoint.Tensor{}
	checked := map[[2]string]bool{}
	for _, c := range spec.Combinations() {
		cfg := spec.Config(c)
		init := cfg.Init
		if init == nil || strings.Contains(init.Weights, "://") || strings.HasPrefix(init.Weights, pretrained.TorchvisionPrefix) ||
			checked[[2]string{init.Weights, c.Model}] {
			continue
		}
		checked[[2]string{init.Weights, c.Model}] = true
		weights, ok := read[init.Weights]
		if !ok {
			// Not here, or past the workers' own size limit (they refuse
			// it, saying so): left to them.
			if st, err := os.Stat(init.Weights); err != nil || !st.Mode().IsRegular() || st.Size() > pretrained.DefaultMaxBytes {
				continue
			}
			var err error
			if weights, err = pretrained.Read(init.Weights); err != nil {
				return fmt.Errorf("%w: init.weights %s: %v", sweep.ErrInvalid, init.Weights, err)
			}
			for k, t := range weights { // shapes are what is checked: the data goes
				t.Data = nil
				weights[k] = t
			}
			read[init.Weights] = weights
		}
		if err := pretrained.CheckFits(c.Model, cfg.Classifier(), weights); err != nil {
			return fmt.Errorf("%w: init.weights %s for %s: %v", sweep.ErrInvalid, init.Weights, c.Model, err)
		}
	}
	return nil
}

// sweepName is the name of the sweep --sweep names: a preset's or a YAML
// file's name field, or the argument itself for a sweep known only by name.
func sweepName(arg string) string {
	if spec, err := sweep.Load(arg); err == nil {
		return spec.Name
	}
	return arg
}

func sweepID(o options) string {
	if o.id != "" {
		return o.id
	}
	return workflows.SweepID(sweepName(o.sweep))
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		usage(os.Stdout)
		return
	}
	cmd, o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		usage(os.Stderr)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, cmd, o, os.Stdout, logger); err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(exitCode(err))
	}
}

var errUsage = errors.New("usage")

// exitCode is the starter's exit status for an error: 2 for a bad command
// line or spec, 3 when a followed sweep (--wait) ended with combinations
// that failed or were cancelled, 1 for anything else (0: no error).
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, sweep.ErrInvalid) || errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errIncomplete):
		return 3
	}
	return 1
}

func run(ctx context.Context, cmd string, o options, w io.Writer, logger *slog.Logger) error {
	switch cmd {
	case "start":
		return start(ctx, o, w, logger)
	case "status":
		return status(ctx, o, w, logger)
	case "pause", "resume", "cancel":
		return control(ctx, cmd, o, w, logger)
	case "list":
		return list(ctx, w, logger)
	case "report":
		return reportCmd(ctx, o, w, logger)
	case "add":
		return add(ctx, o, w, logger)
	case "checkpoints":
		return checkpoints(ctx, o, w)
	case "gc":
		return gc(ctx, o, w)
	case "import":
		return importTree(o, w)
	case "explain":
		return explain(o, w)
	case "dev-server-flags":
		// For scripts that start a dev server: the search attributes.
		_, err := fmt.Fprintln(w, strings.Join(temporalx.DevServerFlags(), " "))
		return err
	}
	return fmt.Errorf("%w: unknown command %q (%s)", errUsage, cmd, commandNames())
}

func uiURL(id string) string {
	base := temporalx.EnvOr("RESOMAP_UI_URL", "http://localhost:8233")
	ns := temporalx.EnvOr("TEMPORAL_NAMESPACE", "default")
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", base, ns, id)
}

func fmtDuration(s float64) string { return (time.Duration(s) * time.Second).String() }
