package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/workflows"
)

// TrackTraining brings a training's MLflow run up to date with what the
// store holds of it (tracking.Client.SyncTraining: each thing once, however
// often it runs). A server that is down or failing is retried by the
// workflow; one that refuses for good fails the attempt with
// ErrTypeTracking, and the training goes on regardless.
func (a *Activities) TrackTraining(ctx context.Context, in workflows.TrackInput) (workflows.TrackOutput, error) {
	var out workflows.TrackOutput
	c, err := trackingClient(in.Tracking)
	if err != nil {
		return out, trackingError(ctx, in.Outcome.ID(), err)
	}
	t, err := a.trainingRun(ctx, in)
	if err != nil {
		return out, err
	}
	s, err := c.SyncTraining(ctx, t)
	if err != nil {
		return out, trackingError(ctx, in.Outcome.ID(), err)
	}
	out.RunID, out.Epochs, out.URL = s.RunID, epochsIn(t.Metrics), c.RunURL(s.ExperimentID, s.RunID)
	if s.MetricsSent > 0 || s.Uploaded > 0 {
		activity.GetLogger(ctx).Info("tracked", "training", in.Outcome.ID(), "run", s.RunID, "server", c,
			"points", s.MetricsSent, "artifacts", s.Uploaded, "status", t.Status)
	}
	if len(s.Unsupported) > 0 {
		activity.GetLogger(ctx).Warn("the tracking server has no endpoint for these: left out", "server", c, "left_out", s.Unsupported)
	}
	return out, nil
}

// trackingClient is a client of the settings' server with the worker's
// credentials (MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD).
func trackingClient(ts sweep.TrackingSettings) (*tracking.Client, error) {
	if !ts.On() {
		return nil, tracking.Permanent(fmt.Errorf("tracking is off (no tracking.uri)"))
	}
	return tracking.FromEnv(ts.URI)
}

// trackingError logs a tracking failure in one line and makes it the
// workflow's: retried when a retry may mend it, else ErrTypeTracking.
func trackingError(ctx context.Context, what string, err error) error {
	activity.GetLogger(ctx).Warn("tracking: "+err.Error(), "training", what)
	if tracking.Retryable(err) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeTracking, err)
}

// epochFigure is one figure of an epoch's record under its MLflow key.
type epochFigure struct {
	key string
	of  func(sweep.EpochMetrics) float64
}

// metricNames are the per-epoch figures a run shows, by MLflow key.
var metricNames = []epochFigure{
	{"train_loss", func(m sweep.EpochMetrics) float64 { return m.TrainLoss }},
	{"train_acc", func(m sweep.EpochMetrics) float64 { return m.TrainAcc }},
	{"val_loss", func(m sweep.EpochMetrics) float64 { return m.ValLoss }},
	{"val_acc", func(m sweep.EpochMetrics) float64 { return m.ValAcc }},
	{"lr", func(m sweep.EpochMetrics) float64 { return m.LR }},
	{"images_per_s", func(m sweep.EpochMetrics) float64 { return m.ImagesPS }},
	{"epoch_seconds", func(m sweep.EpochMetrics) float64 { return m.Seconds }},
}

// systemMetricNames are the host's figures of each epoch under MLflow's
// system-metric names (one point per epoch, where MLflow's sampler takes
// one every 10 s).
var systemMetricNames = []epochFigure{
	{"system/cpu_utilization_percentage", func(m sweep.EpochMetrics) float64 { return m.HostCPUPercent }},
	{"system/system_memory_usage_megabytes", func(m sweep.EpochMetrics) float64 { return m.HostMemoryMB }},
	{"system/system_memory_usage_percentage", func(m sweep.EpochMetrics) float64 { return m.HostMemoryPercent }},
}

type figure struct {
	key   string
	value float64
}

// gpuFigures are one GPU's figures of an epoch under MLflow's GPU
// system-metric names (gpu_N_…, N NVML's index); utilisation and power
// only where the GPU gave them.
func gpuFigures(g sweep.GPUFigures) []figure {
	name := func(what string) string { return fmt.Sprintf("system/gpu_%d_%s", g.Index, what) }
	figs := []figure{{name("memory_usage_megabytes"), g.MemoryMB}, {name("memory_usage_percentage"), g.MemoryPercent}}
	for _, f := range []struct {
		what string
		v    *float64
	}{{"utilization_percentage", g.UtilizationPercent}, {"power_usage_watts", g.PowerWatts}, {"power_usage_percentage", g.PowerPercent}} {
		if f.v != nil {
			figs = append(figs, figure{name(f.what), *f.v})
		}
	}
	return figs
}

// trainingRun is what the training's run must show, read from the store.
func (a *Activities) trainingRun(ctx context.Context, in workflows.TrackInput) (tracking.Training, error) {
	o := in.Outcome
	o.ConfigHash = in.Prepared.ConfigHash
	if err := a.fillMetrics(ctx, &o); err != nil {
		return tracking.Training{}, err
	}
	cfg := in.Prepared.Config
	t := tracking.Training{
		Sweep: tracking.Sweep{Experiment: in.Tracking.ExperimentFor(in.Sweep), Name: in.Sweep, WorkflowID: in.SweepID,
			Start: in.Started.UnixMilli(), Tags: []tracking.Tag{{Key: "resomap.sweep", Value: in.Sweep}}},
		Name: o.ID(), ConfigHash: in.Prepared.ConfigHash, WorkflowID: in.WorkflowID, Start: in.Started.UnixMilli(),
		Params: configParams(cfg),
		Tags: []tracking.Tag{{Key: "model", Value: cfg.Model}, {Key: "family", Value: in.Prepared.Family},
			{Key: "resolution", Value: strconv.Itoa(cfg.Resolution)}, {Key: "seed", Value: strconv.FormatUint(cfg.Seed, 10)},
			{Key: "config_hash", Value: in.Prepared.ConfigHash}, {Key: "data_hash", Value: cfg.DataHash},
			{Key: "recipe", Value: recipe(o, cfg)}, {Key: "resomap.sweep", Value: in.Sweep}},
		Status: runStatus(o.Status), Adopted: o.Status == sweep.Skipped,
	}
	if o.Status.Done() && !o.FinishedAt.IsZero() {
		t.End = o.FinishedAt.UnixMilli()
	}
	t.Tags = append(t.Tags, sourceTags()...)
	t.Metrics = epochMetrics(o, in.Started)
	t.Inputs = []tracking.DatasetInput{dataInput(cfg)}
	if in.Tracking.LogModels && o.Status == sweep.Completed && o.Keys.Best != "" {
		arts, err := a.modelArtifacts(ctx, o.Keys.Best)
		if err != nil {
			return t, err
		}
		t.Artifacts = arts
		// One registered model per sweep and architecture; each training's
		// best model a version, named by its alias.
		t.Register = &tracking.Registration{Model: tracking.RegisteredModelName(in.Sweep + "-" + cfg.Model), Folder: "best_model",
			Alias: fmt.Sprintf("res%d_seed%d", cfg.Resolution, cfg.Seed)}
	}
	return t, nil
}

// dataInput is the training's data set as an MLflow dataset input: its
// content hash is the digest (the first 36 characters, what MLflow's SQL
// store keeps; the whole hash is the data_hash tag).
func dataInput(cfg sweep.Config) tracking.DatasetInput {
	source, _ := json.Marshal(map[string]string{"uri": cfg.Data})
	return tracking.DatasetInput{Tags: []tracking.Tag{{Key: "mlflow.data.context", Value: "training"}},
		Dataset: tracking.Dataset{Name: cfg.Data, Digest: cfg.DataHash[:min(36, len(cfg.DataHash))], SourceType: "local", Source: string(source)}}
}

// sourceTags are MLflow's source tags: what made the run, and the commit
// this program was built from where the build recorded it.
func sourceTags() []tracking.Tag {
	tags := []tracking.Tag{{Key: "mlflow.source.name", Value: "resomap worker"}, {Key: "mlflow.source.type", Value: "JOB"}}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				tags = append(tags, tracking.Tag{Key: "mlflow.source.git.commit", Value: s.Value})
			}
		}
	}
	return tags
}

// configParams are every setting of the training config, by its JSON
// name (hyper settings flattened in, as the config hashes them).
func configParams(cfg sweep.Config) []tracking.Tag {
	b, _ := json.Marshal(cfg.Shown()) // a presigned URL's signature is a credential
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	var out []tracking.Tag
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		s, ok := v.(string)
		if !ok {
			j, _ := json.Marshal(v)
			s = string(j)
		}
		out = append(out, tracking.Tag{Key: k, Value: s})
	}
	return out
}

func recipe(o sweep.Outcome, cfg sweep.Config) string {
	if o.Augment != "" {
		return o.Augment
	}
	return cfg.Augment
}

// epochMetrics are the run's points: every epoch's figures at step =
// epoch, timed when the figures were known (stored with them), and the
// test-resolution figures at step 0, timed when the training finished.
func epochMetrics(o sweep.Outcome, started time.Time) []tracking.Metric {
	var out []tracking.Metric
	for _, m := range o.Metrics {
		at := m.FinishedAt
		if at.IsZero() { // records older than the field: a time that repeats
			at = started.Add(time.Duration(m.Epoch) * time.Millisecond)
		}
		for _, n := range metricNames {
			out = append(out, tracking.Metric{Key: n.key, Value: n.of(m), Timestamp: at.UnixMilli(), Step: int64(m.Epoch)})
		}
		for _, n := range systemMetricNames {
			if v := n.of(m); v > 0 { // 0: not known (an older record, a resumed epoch's CPU)
				out = append(out, tracking.Metric{Key: n.key, Value: v, Timestamp: at.UnixMilli(), Step: int64(m.Epoch)})
			}
		}
		for _, g := range m.GPUs {
			for _, f := range gpuFigures(g) {
				out = append(out, tracking.Metric{Key: f.key, Value: f.value, Timestamp: at.UnixMilli(), Step: int64(m.Epoch)})
			}
		}
	}
	if o.Status == sweep.Completed {
		for _, r := range o.TestResults {
			if r.Skipped != "" {
				continue
			}
			at := o.FinishedAt.UnixMilli()
			out = append(out,
				tracking.Metric{Key: fmt.Sprintf("test_acc_%dpx", r.Resolution), Value: r.ValAcc, Timestamp: at},
				tracking.Metric{Key: fmt.Sprintf("test_loss_%dpx", r.Resolution), Value: r.ValLoss, Timestamp: at})
		}
	}
	return out
}

func epochsIn(ms []tracking.Metric) int {
	n := 0
	for _, m := range ms {
		n = max(n, int(m.Step))
	}
	return n
}

// runStatus maps a combination's status to an MLflow run's.
func runStatus(s sweep.Status) string {
	switch s {
	case sweep.Completed, sweep.Skipped:
		return tracking.StatusFinished
	case sweep.Failed, sweep.TimedOut:
		return tracking.StatusFailed
	case sweep.Cancelled, sweep.Terminated:
		return tracking.StatusKilled
	}
	return tracking.StatusRunning
}

// modelArtifacts are the best checkpoint's model file and record, read
// (and verified) from the store only when they are uploaded.
func (a *Activities) modelArtifacts(ctx context.Context, bestKey string) ([]tracking.Artifact, error) {
	recJSON, err := store.ReadAll(ctx, a.Store, bestKey)
	if err != nil {
		return nil, fmt.Errorf("best model %s: %w", bestKey, err)
	}
	rec, err := checkpoint.UnmarshalRecord(recJSON)
	if err != nil {
		return nil, fmt.Errorf("best model %s: %w", bestKey, err)
	}
	weights := func(ctx context.Context) (io.ReadCloser, error) {
		_, b, err := a.repo("").LoadWeights(ctx, bestKey)
		return io.NopCloser(bytes.NewReader(b)), err
	}
	record := func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(recJSON)), nil }
	return []tracking.Artifact{
		{Name: "best_model/best_model.safetensors", Size: rec.ModelFile.Size, Open: weights},
		{Name: "best_model/best_model.json", Size: int64(len(recJSON)), Open: record},
	}, nil
}

// FindTracked says whether the tracking server has a FINISHED run of the
// config; its figures come from the run's metric history.
func (a *Activities) FindTracked(ctx context.Context, in workflows.FindTrackedInput) (workflows.LookupOutput, error) {
	var out workflows.LookupOutput
	c, err := trackingClient(in.Tracking)
	if err != nil {
		return out, trackingError(ctx, in.ConfigHash, err)
	}
	f, err := c.FindFinished(ctx, in.Tracking.ExperimentFor(in.Sweep), in.ConfigHash, "val_loss", "val_acc", "train_loss", "train_acc")
	if err != nil {
		return out, trackingError(ctx, in.ConfigHash, err)
	}
	if f == nil {
		return out, nil
	}
	out.Found, out.Sweep, out.Key = true, f.Sweep, "mlflow run "+f.RunID
	out.Outcome = outcomeFromHistories(f)
	out.Outcome.TrackingRun = f.RunID
	return out, nil
}

// outcomeFromHistories rebuilds a training's figures from its run: each
// epoch's, and the best epoch by validation loss.
func outcomeFromHistories(f *tracking.Finished) sweep.Outcome {
	byEpoch := map[int64]*sweep.EpochMetrics{}
	set := map[string]func(*sweep.EpochMetrics, float64){
		"val_loss": func(m *sweep.EpochMetrics, v float64) { m.ValLoss = v }, "val_acc": func(m *sweep.EpochMetrics, v float64) { m.ValAcc = v },
		"train_loss": func(m *sweep.EpochMetrics, v float64) { m.TrainLoss = v }, "train_acc": func(m *sweep.EpochMetrics, v float64) { m.TrainAcc = v },
	}
	for key, points := range f.Histories {
		for _, p := range points {
			if byEpoch[p.Step] == nil {
				byEpoch[p.Step] = &sweep.EpochMetrics{Epoch: int(p.Step)}
			}
			set[key](byEpoch[p.Step], p.Value)
		}
	}
	var o sweep.Outcome
	for _, step := range slices.Sorted(maps.Keys(byEpoch)) {
		m := *byEpoch[step]
		o.Metrics = append(o.Metrics, m)
		if o.BestEpoch == 0 || m.ValLoss < o.BestValLoss {
			o.BestEpoch, o.BestValLoss, o.BestValAcc = m.Epoch, m.ValLoss, m.ValAcc
		}
	}
	o.EpochsDone = len(o.Metrics)
	return o
}

// TrackSweep finishes the sweep's parent run: every training whose run is
// behind is synced first (from the store), then the report is attached and
// the run's status set. It fails (and is retried) while any training's run
// cannot be brought up to date, so the parent is FINISHED only when all
// its runs are complete.
func (a *Activities) TrackSweep(ctx context.Context, in workflows.TrackSweepInput) (workflows.TrackOutput, error) {
	var out workflows.TrackOutput
	c, err := trackingClient(in.Spec.Tracking)
	if err != nil {
		return out, trackingError(ctx, in.Spec.Name, err)
	}
	behind, named, err := a.behindRuns(ctx, in)
	if err != nil {
		return out, trackingError(ctx, in.Spec.Name, err)
	}
	// An attempt goes on from the first training the last one did not sync.
	done := 0
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &done)
	}
	for k := done; k < len(behind); k++ {
		o := behind[k]
		err := a.catchUp(ctx, in, o)
		if errors.Is(err, errConfigChanged) && k >= named {
			// Read from the store under the sweep's name but trained with
			// another config (the sweep's settings changed since): not one
			// of this sweep's trainings.
			activity.GetLogger(ctx).Warn("tracking: not caught up: "+err.Error(), "training", o.ID())
			err = nil
		}
		if errors.Is(err, errConfigChanged) { // no retry mends it
			err = fmt.Errorf("%s: %w", o.ID(), err)
			activity.GetLogger(ctx).Warn("tracking: "+err.Error(), "training", o.ID())
			return out, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeTracking, err)
		}
		if err != nil {
			return out, trackingError(ctx, o.ID(), fmt.Errorf("%s: %w", o.ID(), err))
		}
		activity.RecordHeartbeat(ctx, k+1)
	}
	sw := tracking.Sweep{Experiment: in.Spec.Tracking.ExperimentFor(in.Spec.Name), Name: in.Spec.Name, WorkflowID: in.SweepID,
		Start: in.Started.UnixMilli(), Tags: []tracking.Tag{{Key: "resomap.sweep", Value: in.Spec.Name}}}
	var arts []tracking.Artifact
	if in.Spec.Tracking.LogReport {
		if arts, err = a.reportArtifacts(ctx, in.Spec); err != nil {
			activity.GetLogger(ctx).Warn("report not attached to the sweep's run", "err", err)
		}
	}
	status := tracking.StatusFinished
	if in.Status == "cancelled" {
		status = tracking.StatusKilled
	}
	s, err := c.FinishSweep(ctx, sw, status, in.Ended.UnixMilli(), arts)
	if err != nil {
		return out, trackingError(ctx, in.Spec.Name, err)
	}
	out.RunID = s.RunID
	return out, nil
}

// behindRuns are the trainings whose runs the sweep's catch-up syncs: the
// first named are those the sweep names as behind; when it names only some
// (a sweep keeps a bounded list), every other ended training of the sweep
// the store holds follows (a sync of a run that is up to date changes
// nothing), in the order of their names, so each attempt sees one list.
func (a *Activities) behindRuns(ctx context.Context, in workflows.TrackSweepInput) (runs []sweep.Outcome, named int, err error) {
	var out []sweep.Outcome
	seen := map[string]bool{}
	take := func(o sweep.Outcome) {
		if o.ConfigHash == "" || o.Status == sweep.Pending || seen[o.ID()] {
			return // never prepared: no run
		}
		seen[o.ID()] = true
		out = append(out, o)
	}
	for _, o := range in.Outcomes {
		if o.Tracking != "" {
			take(o)
		}
	}
	named = len(out)
	if !in.FromStore {
		return out, named, nil
	}
	stored, err := a.index().Outcomes(ctx, in.Spec.Name)
	if err != nil {
		return nil, 0, fmt.Errorf("read the outcomes of sweep %s: %w", in.Spec.Name, err)
	}
	ours := map[string]bool{} // the sweep's trainings, by either name of each
	for _, c := range in.Spec.Combinations() {
		ours[c.ID()] = true
		if alias, ok := in.Spec.Alias(c); ok && c.Seed != 0 { // the name it had before the sweep was given seeds
			ours[alias.ID()] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(stored)) {
		if o := stored[id]; ours[id] && o.Status.Done() {
			take(o)
		}
	}
	return out, named, nil
}

// errConfigChanged: a training's config prepared now is not the one it
// was trained with.
var errConfigChanged = errors.New("the training's config changed since")

// catchUp syncs a training whose run fell behind, with its config
// prepared again (the same hash: Prepare is deterministic).
func (a *Activities) catchUp(ctx context.Context, in workflows.TrackSweepInput, o sweep.Outcome) error {
	prep, err := a.prepare(ctx, workflows.PrepareInput{Spec: in.Spec,
		Combination: sweep.Combination{Model: o.Model, Resolution: o.Resolution, Seed: o.Seed}})
	if err != nil {
		return err
	}
	if prep.ConfigHash != o.ConfigHash {
		return fmt.Errorf("%w: config hash %s now, %s when trained (the data or the settings changed)", errConfigChanged, prep.ConfigHash, o.ConfigHash)
	}
	_, err = a.TrackTraining(ctx, workflows.TrackInput{Sweep: in.Spec.Name, SweepID: in.SweepID,
		WorkflowID: workflows.ChildID(in.SweepID, o.ID()), Tracking: in.Spec.Tracking, Prepared: prep, Outcome: o, Started: in.Started})
	return err
}

// reportArtifacts builds the sweep's report folder from the store and
// returns its files, under report/.
func (a *Activities) reportArtifacts(ctx context.Context, spec sweep.Spec) ([]tracking.Artifact, error) {
	if a.Report == nil {
		return nil, errors.New("this worker writes no reports (Activities.Report is nil)")
	}
	dir, err := os.MkdirTemp("", "resomap-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files, err := a.Report(ctx, a.Store, spec, dir)
	if err != nil {
		return nil, err
	}
	var out []tracking.Artifact
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, tracking.Artifact{Name: "report/" + filepath.Base(f), Size: int64(len(b)),
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
	}
	return out, nil
}
