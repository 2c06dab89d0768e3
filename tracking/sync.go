package tracking

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Tags ResoMap puts on runs and searches by.
const (
	TagConfigHash = "resomap.config_hash"
	TagKind       = "resomap.kind" // "sweep" or "training"
	TagSweepID    = "resomap.sweep_workflow_id"
	TagWorkflowID = "resomap.workflow_id"
	tagParent     = "mlflow.parentRunId" // MLflow's nesting
	kindSweep     = "sweep"
	kindTraining  = "training"
)

// Sweep names a sweep's parent run.
type Sweep struct {
	Experiment string // experiment name
	Name       string
	WorkflowID string // the sweep workflow's ID: the parent run's identity
	Start      int64  // ms
	Tags       []Tag
}

// Training is what one training's run must show: a sync makes the run
// show it, adding only what is missing.
type Training struct {
	Sweep      Sweep
	Name       string // model@resolution[-seedN]
	ConfigHash string // the run's identity, across sweeps
	WorkflowID string
	Start      int64 // ms
	Params     []Tag
	Tags       []Tag
	// Metrics are every point the run must have; a point is identified by
	// its key and step, and its timestamp comes from the stored record, so
	// a repeated sync sends the same point.
	Metrics []Metric
	// Status is the run's (RUNNING until the training ends) and End its
	// end time (ms; 0 while running).
	Status string
	End    int64
	// Artifacts are uploaded once each (name and size decide).
	Artifacts []Artifact
	// Adopted: this sweep skipped the training (another trained it), so a
	// run that exists is left as it is; one is made only when none does.
	Adopted bool
	// Inputs are the run's dataset inputs, logged once each.
	Inputs []DatasetInput
	// Register, when set, registers the run's model (after its artifacts
	// are uploaded) and points an alias at that version.
	Register *Registration
}

// Artifact is a file to attach to a run.
type Artifact struct {
	Name string // path in the run's artifacts, e.g. best_model/best_model.safetensors
	Size int64
	Open func(context.Context) (io.ReadCloser, error)
}

// Synced says what a sync found and did.
type Synced struct {
	ExperimentID string
	ParentRunID  string
	RunID        string
	MetricsSent  int    // points logged now (0: the run had them all)
	Uploaded     int    // artifacts uploaded now
	InputsSent   int    // dataset inputs logged now
	Version      string // the registered model version (Register)
	// Unsupported names what the server has no endpoint for (left out).
	Unsupported []string
}

// unsupported says whether err is a server's answer that it has no such
// endpoint: an older MLflow or another server (a 404 with no MLflow error
// code, ENDPOINT_NOT_FOUND, 405 or 501).
func unsupported(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == 404 && (e.Code == "" || e.Code == "ENDPOINT_NOT_FOUND") || e.Status == 405 || e.Status == 501
}

// SyncTraining brings t's run up to date: the sweep's parent run and the
// training's run exist once each (found by their tags), and every param,
// tag, metric point and artifact of t is there exactly once; the status is
// set last, so a FINISHED run is complete.
func (c *Client) SyncTraining(ctx context.Context, t Training) (s Synced, err error) {
	for range 3 {
		// A run deleted under this sync (a racing creator kept another)
		// is found replaced when the sync starts again.
		if s, err = c.syncTraining(ctx, t); !notActive(err) {
			break
		}
	}
	return s, err
}

func (c *Client) syncTraining(ctx context.Context, t Training) (Synced, error) {
	var s Synced
	var err error
	if s.ExperimentID, err = c.Experiment(ctx, t.Sweep.Experiment); err != nil {
		return s, err
	}
	parent, err := c.SweepRun(ctx, s.ExperimentID, t.Sweep)
	if err != nil {
		return s, err
	}
	s.ParentRunID = parent.Info.RunID
	tags := append(slices.Clone(t.Tags), Tag{TagKind, kindTraining}, Tag{TagConfigHash, t.ConfigHash},
		Tag{TagWorkflowID, t.WorkflowID}, Tag{TagSweepID, t.Sweep.WorkflowID}, Tag{tagParent, s.ParentRunID})
	run, err := c.ensureRun(ctx, s.ExperimentID, filterEq(TagConfigHash, t.ConfigHash), t.Name, t.Start, tags)
	if err != nil {
		return s, err
	}
	s.RunID = run.Info.RunID
	if run.Info.Status == StatusFinished && (t.Adopted || run.Tag(TagWorkflowID) != t.WorkflowID) {
		// Trained and finished before: that run is this training's
		// record, and a sweep that adopts its result changes nothing in it.
		return s, nil
	}
	if err := c.LogBatch(ctx, s.RunID, nil, missingParams(run, t.Params), changedTags(run, tags)); err != nil {
		return s, err
	}
	if s.MetricsSent, err = c.logMissingMetrics(ctx, s.RunID, t.Metrics); err != nil {
		return s, err
	}
	if s.Uploaded, err = c.uploadMissing(ctx, run, t.Artifacts); err != nil {
		return s, err
	}
	// Dataset inputs (MLflow 2.4+) and aliases (2.3+) are what a server
	// may not have: without them the run is still completed, and the
	// sync says what it left out.
	if s.InputsSent, err = c.logMissingInputs(ctx, run, t.Inputs); unsupported(err) {
		s.Unsupported = append(s.Unsupported, "dataset inputs")
	} else if err != nil {
		return s, err
	}
	if t.Register != nil {
		if s.Version, err = c.register(ctx, run, *t.Register); unsupported(err) || errors.Is(err, errUnquotableID) {
			s.Unsupported = append(s.Unsupported, "the model registry")
		} else if err != nil {
			return s, err
		}
	}
	if run.Info.Status != t.Status || (t.End > 0 && run.Info.EndTime != t.End) {
		if err := c.UpdateRun(ctx, s.RunID, t.Status, t.End); err != nil {
			return s, err
		}
	}
	return s, nil
}

// SweepRun finds or creates the sweep's parent run.
func (c *Client) SweepRun(ctx context.Context, experimentID string, sw Sweep) (Run, error) {
	tags := append(slices.Clone(sw.Tags), Tag{TagKind, kindSweep}, Tag{TagSweepID, sw.WorkflowID})
	filter := filterEq(TagSweepID, sw.WorkflowID) + " and " + filterEq(TagKind, kindSweep)
	return c.ensureRun(ctx, experimentID, filter, sw.Name, sw.Start, tags)
}

// FinishSweep sets the sweep's parent run's status and end time, and
// uploads its artifacts (the report) first.
func (c *Client) FinishSweep(ctx context.Context, sw Sweep, status string, end int64, artifacts []Artifact) (Synced, error) {
	var s Synced
	var err error
	if s.ExperimentID, err = c.Experiment(ctx, sw.Experiment); err != nil {
		return s, err
	}
	parent, err := c.SweepRun(ctx, s.ExperimentID, sw)
	if err != nil {
		return s, err
	}
	s.ParentRunID, s.RunID = parent.Info.RunID, parent.Info.RunID
	if s.Uploaded, err = c.uploadMissing(ctx, parent, artifacts); err != nil {
		return s, err
	}
	if parent.Info.Status != status || parent.Info.EndTime != end {
		err = c.UpdateRun(ctx, s.RunID, status, end)
	}
	return s, err
}

// ensureRun returns the one active run that filter finds, creating it when
// there is none. Creators racing (a retried attempt and the zombie of the
// one before, or two trainings' first syncs making their sweep's run) may
// each create one: each then keeps the oldest (by start time, then ID) and
// deletes the others, so one run remains; a creator that had gone on with
// a deleted run finds the kept one at its next sync, which logs there
// whatever the kept run lacks.
func (c *Client) ensureRun(ctx context.Context, experimentID, filter, name string, start int64, tags []Tag) (Run, error) {
	runs, err := c.SearchRuns(ctx, experimentID, filter)
	if err != nil || len(runs) > 0 {
		return oldest(runs), err
	}
	made, err := c.CreateRun(ctx, experimentID, name, start, tags)
	if err != nil {
		return Run{}, err
	}
	if runs, err = c.SearchRuns(ctx, experimentID, filter); err != nil {
		return Run{}, err
	}
	keep := oldest(runs)
	if keep.Info.RunID == "" { // not searchable yet: the one made is it
		return made, nil
	}
	for _, r := range runs {
		if r.Info.RunID == keep.Info.RunID {
			continue
		}
		if err := c.DeleteRun(ctx, r.Info.RunID); err != nil && !IsCode(err, codeNotFound) {
			return Run{}, err
		}
	}
	return keep, nil
}

// oldest is the canonical run of several: the first started, then the
// smallest ID (zero Run for none).
func oldest(runs []Run) Run {
	if len(runs) == 0 {
		return Run{}
	}
	return slices.MinFunc(runs, func(a, b Run) int {
		if a.Info.StartTime != b.Info.StartTime {
			return int(a.Info.StartTime - b.Info.StartTime)
		}
		return strings.Compare(a.Info.RunID, b.Info.RunID)
	})
}

// filterEq is MLflow's search filter for a tag's value. Values are ResoMap's
// own (hashes, workflow IDs); a quote in one is refused by the sweep name's
// rules, and escaped here for safety.
func filterEq(tag, value string) string {
	return fmt.Sprintf("tags.`%s` = '%s'", tag, strings.ReplaceAll(value, "'", `\'`))
}

// missingParams are t's params the run lacks. A param the run has keeps
// its value: MLflow refuses to change one, and the config hash (the run's
// identity) fixes every setting.
func missingParams(run Run, params []Tag) []Tag {
	var out []Tag
	for _, p := range params {
		if !slices.ContainsFunc(run.Data.Params, func(q Tag) bool { return q.Key == p.Key }) {
			out = append(out, p)
		}
	}
	return out
}

func changedTags(run Run, tags []Tag) []Tag {
	var out []Tag
	for _, t := range tags {
		if v := run.Tag(t.Key); v != t.Value {
			out = append(out, t)
		}
	}
	return out
}

// logMissingMetrics logs the points whose (key, step) the run's history
// lacks, and says how many.
func (c *Client) logMissingMetrics(ctx context.Context, runID string, want []Metric) (int, error) {
	var keys []string
	for _, m := range want {
		if !slices.Contains(keys, m.Key) {
			keys = append(keys, m.Key)
		}
	}
	var missing []Metric
	for _, k := range keys {
		have, err := c.History(ctx, runID, k)
		if err != nil {
			return 0, err
		}
		for _, m := range want {
			if m.Key == k && !slices.ContainsFunc(have, func(h Metric) bool { return h.Step == m.Step }) {
				missing = append(missing, m)
			}
		}
	}
	return len(missing), c.LogBatch(ctx, runID, missing, nil, nil)
}

// uploadMissing uploads the artifacts the run lacks (by path and size).
func (c *Client) uploadMissing(ctx context.Context, run Run, artifacts []Artifact) (int, error) {
	n := 0
	listed := map[string]map[string]int64{}
	for _, a := range artifacts {
		dir := parentDir(a.Name)
		if listed[dir] == nil {
			sizes, err := c.ArtifactSizes(ctx, run.Info.RunID, dir)
			if err != nil {
				return n, err
			}
			listed[dir] = sizes
		}
		if size, ok := listed[dir][a.Name]; ok && size == a.Size {
			continue
		}
		if err := c.upload(ctx, run, a); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (c *Client) upload(ctx context.Context, run Run, a Artifact) error {
	r, err := a.Open(ctx)
	if err != nil {
		return fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	defer r.Close()
	return c.UploadArtifact(ctx, run, a.Name, r, a.Size)
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Finished is a run found FINISHED for a config, with the histories of
// the metrics asked for.
type Finished struct {
	RunID     string
	Sweep     string // the sweep tag of the run
	Histories map[string][]Metric
}

// FindFinished looks for a FINISHED run of the training config hash in
// the experiment called experiment (nil when there is none).
func (c *Client) FindFinished(ctx context.Context, experiment, configHash string, metrics ...string) (*Finished, error) {
	exp, err := c.Experiment(ctx, experiment)
	if err != nil {
		return nil, err
	}
	runs, err := c.SearchRuns(ctx, exp, filterEq(TagConfigHash, configHash)+" and attributes.status = 'FINISHED'")
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	run := oldest(runs)
	f := &Finished{RunID: run.Info.RunID, Sweep: run.Tag("resomap.sweep"), Histories: map[string][]Metric{}}
	for _, k := range metrics {
		if f.Histories[k], err = c.History(ctx, run.Info.RunID, k); err != nil {
			return nil, err
		}
	}
	return f, nil
}
