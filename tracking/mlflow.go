package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// MLflow's error codes that ResoMap acts on.
const (
	codeNotFound      = "RESOURCE_DOES_NOT_EXIST"
	codeAlreadyExists = "RESOURCE_ALREADY_EXISTS"
)

// notActive says whether err is the answer about a run deleted meanwhile
// (MLflow gives it no code of its own).
func notActive(err error) bool {
	var api *APIError
	return errors.As(err, &api) && strings.Contains(api.Message, "must be in the 'active' state")
}

// Run statuses.
const (
	StatusRunning  = "RUNNING"
	StatusFinished = "FINISHED"
	StatusFailed   = "FAILED"
	StatusKilled   = "KILLED"
)

// Tag is a key and value (params and tags alike).
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Metric is one point of a metric's history.
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"` // ms since the epoch
	Step      int64   `json:"step"`
}

// RunInfo is a run's info block.
type RunInfo struct {
	RunID          string `json:"run_id"`
	ExperimentID   string `json:"experiment_id"`
	RunName        string `json:"run_name"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// Run is a run with its params, tags and dataset inputs.
type Run struct {
	Info RunInfo `json:"info"`
	Data struct {
		Params []Tag `json:"params"`
		Tags   []Tag `json:"tags"`
	} `json:"data"`
	Inputs struct {
		DatasetInputs []DatasetInput `json:"dataset_inputs"`
	} `json:"inputs"`
}

// Tag returns the value of tag key ("" if absent).
func (r Run) Tag(key string) string { return find(r.Data.Tags, key) }

// Param returns the value of param key ("" if absent).
func (r Run) Param(key string) string { return find(r.Data.Params, key) }

func find(kv []Tag, key string) string {
	for _, t := range kv {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}

// Experiment returns the ID of the experiment called name, creating it if
// there is none. A deleted one is an error naming it: MLflow keeps its name
// taken until it is restored or purged.
func (c *Client) Experiment(ctx context.Context, name string) (string, error) {
	for range 2 { // get, else create; a concurrent create makes the get win next time
		var got struct {
			Experiment struct {
				ID    string `json:"experiment_id"`
				Stage string `json:"lifecycle_stage"`
			} `json:"experiment"`
		}
		err := c.call(ctx, http.MethodGet, "experiments/get-by-name", url.Values{"experiment_name": {name}}, nil, &got)
		switch {
		case err == nil && got.Experiment.Stage == "deleted":
			return "", Permanent(fmt.Errorf("mlflow experiment %q (ID %s) is deleted: restore it (mlflow experiments restore) or name another (tracking.experiment, %s)",
				name, got.Experiment.ID, EnvExperiment))
		case err == nil:
			return got.Experiment.ID, nil
		case !IsCode(err, codeNotFound):
			return "", err
		}
		var made struct {
			ID string `json:"experiment_id"`
		}
		err = c.call(ctx, http.MethodPost, "experiments/create", nil, map[string]any{"name": name}, &made)
		if err == nil {
			return made.ID, nil
		}
		if !IsCode(err, codeAlreadyExists) {
			return "", err
		}
	}
	return "", fmt.Errorf("mlflow experiment %q: neither found nor created", name)
}

// SearchRuns returns the active runs of experiment that match filter
// (MLflow's search syntax), oldest first, at most 1000.
func (c *Client) SearchRuns(ctx context.Context, experiment, filter string) ([]Run, error) {
	var out struct {
		Runs []Run `json:"runs"` // absent when nothing matches
	}
	in := map[string]any{"experiment_ids": []string{experiment}, "filter": filter, "max_results": 1000,
		"order_by": []string{"attributes.start_time ASC"}, "run_view_type": "ACTIVE_ONLY"}
	if err := c.call(ctx, http.MethodPost, "runs/search", nil, in, &out); err != nil {
		return nil, err
	}
	return out.Runs, nil
}

// CreateRun starts a run with name and tags at start (ms).
func (c *Client) CreateRun(ctx context.Context, experiment, name string, start int64, tags []Tag) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	in := map[string]any{"experiment_id": experiment, "run_name": name, "start_time": start}
	putList(in, "tags", tags)
	err := c.call(ctx, http.MethodPost, "runs/create", nil, in, &out)
	return out.Run, err
}

// GetRun reads a run.
func (c *Client) GetRun(ctx context.Context, runID string) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	err := c.call(ctx, http.MethodGet, "runs/get", url.Values{"run_id": {runID}}, nil, &out)
	return out.Run, err
}

// DeleteRun marks a run deleted.
func (c *Client) DeleteRun(ctx context.Context, runID string) error {
	return c.call(ctx, http.MethodPost, "runs/delete", nil, map[string]any{"run_id": runID}, nil)
}

// maxBatch are MLflow's limits on one log-batch call: each list, all of
// them together, and the request's size (1 MB; kept well under, as the
// estimate below counts an entry's strings and a margin for its JSON).
const (
	maxBatchMetrics = 1000
	maxBatchParams  = 100
	maxBatchTags    = 100
	maxBatchEntries = 1000
	maxBatchBytes   = 800_000
)

// LogBatch logs metrics, params and tags to a run, in as many calls as
// MLflow's limits need.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params, tags []Tag) error {
	for len(metrics) > 0 || len(params) > 0 || len(tags) > 0 {
		m, p, t := batchSizes(metrics, params, tags)
		in := map[string]any{"run_id": runID}
		// The real server fails (500) on a null list: absent or non-empty.
		putList(in, "metrics", metrics[:m])
		putList(in, "params", params[:p])
		putList(in, "tags", tags[:t])
		if err := c.call(ctx, http.MethodPost, "runs/log-batch", nil, in, nil); err != nil {
			return err
		}
		metrics, params, tags = metrics[m:], params[p:], tags[t:]
	}
	return nil
}

// History returns every point of metric key of a run.
func (c *Client) History(ctx context.Context, runID, key string) ([]Metric, error) {
	var all []Metric
	q := url.Values{"run_id": {runID}, "metric_key": {key}, "max_results": {"25000"}}
	for {
		var out struct {
			Metrics []Metric `json:"metrics"`
			Next    string   `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodGet, "metrics/get-history", q, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Metrics...)
		if out.Next == "" {
			return all, nil
		}
		q.Set("page_token", out.Next)
	}
}

// UpdateRun sets a run's status and end time (ms; 0: none).
func (c *Client) UpdateRun(ctx context.Context, runID, status string, end int64) error {
	in := map[string]any{"run_id": runID, "status": status}
	if end > 0 {
		in["end_time"] = end
	}
	return c.call(ctx, http.MethodPost, "runs/update", nil, in, nil)
}

// proxiedArtifacts is the prefix of artifact URIs the tracking server
// stores itself (mlflow server --artifacts-destination, the default since
// MLflow 2.0, and DagsHub's).
const proxiedArtifacts = "mlflow-artifacts:"

// artifactPath returns the HTTP path under which the server stores a run's
// artifact name, or an error when the run's artifacts live where ResoMap
// cannot write over REST (s3://, dbfs:/, a local folder of the server).
func artifactPath(run Run, name string) (string, error) {
	uri := run.Info.ArtifactURI
	rest, ok := strings.CutPrefix(uri, proxiedArtifacts)
	if !ok {
		return "", Permanent(fmt.Errorf("mlflow run %s stores artifacts at %q, which ResoMap cannot write through the tracking server: start the server with --artifacts-destination (proxied artifacts) or turn tracking.log_models off", run.Info.RunID, uri))
	}
	return path.Join("/api/2.0/mlflow-artifacts/artifacts", strings.TrimLeft(rest, "/"), name), nil
}

// ArtifactSizes lists the files under dir of a run's artifacts, by path.
func (c *Client) ArtifactSizes(ctx context.Context, runID, dir string) (map[string]int64, error) {
	var out struct {
		Files []struct {
			Path  string `json:"path"`
			IsDir bool   `json:"is_dir"`
			Size  int64  `json:"file_size"`
		} `json:"files"`
	}
	q := url.Values{"run_id": {runID}}
	if dir != "" {
		q.Set("path", dir)
	}
	if err := c.call(ctx, http.MethodGet, "artifacts/list", q, nil, &out); err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, f := range out.Files {
		if !f.IsDir {
			sizes[f.Path] = f.Size
		}
	}
	return sizes, nil
}

// UploadArtifact stores size bytes from body as the run's artifact name.
func (c *Client) UploadArtifact(ctx context.Context, run Run, name string, body io.Reader, size int64) error {
	p, err := artifactPath(run, name)
	if err != nil {
		return err
	}
	u := *c.base
	u.Path += p
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	return c.do(req, "PUT artifact "+name, nil)
}

// ms is a Unix time in milliseconds, as MLflow keeps time.
func ms(sec int64, nsec int64) int64 { return sec*1000 + nsec/1e6 }

// formatFloat writes a param value the way it reads back.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// putList sets in[key] to list unless it is empty: MLflow's server fails
// on a list that is null.
func putList[T any](in map[string]any, key string, list []T) {
	if len(list) > 0 {
		in[key] = list
	}
}

// batchSizes is how many of each the next log-batch call takes: params
// and tags first (each list within its limit), then metrics, within the
// total and the size. Each call takes at least one entry.
func batchSizes(metrics []Metric, params, tags []Tag) (m, p, t int) {
	const entry = 80 // JSON punctuation, field names, a number or two
	bytes := 0
	take := func(n, limit int, size func(i int) int) int {
		k := 0
		for k < min(n, limit) && bytes+size(k)+entry <= maxBatchBytes {
			bytes += size(k) + entry
			k++
		}
		return k
	}
	// Sized as they are sent: JSON escapes <, > and & to six bytes each.
	jsonLen := func(v any) int { b, _ := json.Marshal(v); return len(b) }
	p = take(len(params), maxBatchParams, func(i int) int { return jsonLen(params[i]) })
	t = take(len(tags), maxBatchTags, func(i int) int { return jsonLen(tags[i]) })
	m = take(len(metrics), min(maxBatchMetrics, maxBatchEntries-p-t), func(i int) int { return jsonLen(metrics[i]) })
	if m+p+t == 0 { // one entry larger than the limit: the server says why
		switch {
		case len(params) > 0:
			p = 1
		case len(tags) > 0:
			t = 1
		default:
			m = 1
		}
	}
	return m, p, t
}
