package tracking

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Dataset is a run's dataset input, as MLflow's log_input records it.
type Dataset struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"` // MLflow keeps at most 36 characters
	SourceType string `json:"source_type"`
	Source     string `json:"source"` // JSON, e.g. {"uri": "/data/photos"}
}

// DatasetInput is a dataset with its input tags (mlflow.data.context).
type DatasetInput struct {
	Tags    []Tag   `json:"tags,omitempty"`
	Dataset Dataset `json:"dataset"`
}

// Context is the input's mlflow.data.context tag ("" if none).
func (d DatasetInput) Context() string { return find(d.Tags, tagDataContext) }

const tagDataContext = "mlflow.data.context"

// LogInputs records datasets as the run's inputs.
func (c *Client) LogInputs(ctx context.Context, runID string, inputs []DatasetInput) error {
	return c.call(ctx, http.MethodPost, "runs/log-inputs", nil, map[string]any{"run_id": runID, "datasets": inputs}, nil)
}

// Registration puts a run's model in MLflow's model registry: a version of
// the registered model Model whose source is the run's artifact folder
// Folder, and the alias Alias pointing at it.
type Registration struct {
	Model  string
	Folder string // in the run's artifacts, e.g. best_model
	Alias  string
}

// ModelVersion is a version of a registered model.
type ModelVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	RunID   string `json:"run_id"`
}

// CreateRegisteredModel makes the registered model name; one that exists
// is no error.
func (c *Client) CreateRegisteredModel(ctx context.Context, name string) error {
	err := c.call(ctx, http.MethodPost, "registered-models/create", nil, map[string]any{"name": name}, nil)
	if IsCode(err, "RESOURCE_ALREADY_EXISTS") {
		return nil
	}
	return err
}

// RunModelVersions lists the versions of the registered model name made
// from run runID.
func (c *Client) RunModelVersions(ctx context.Context, name, runID string) ([]ModelVersion, error) {
	var out struct {
		Versions []ModelVersion `json:"model_versions"`
	}
	filter := fmt.Sprintf("name=%s and run_id=%s", quote(name), quote(runID))
	err := c.call(ctx, http.MethodGet, "model-versions/search", url.Values{"filter": {filter}}, nil, &out)
	return out.Versions, err
}

// quote is a string literal of MLflow's search filters.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// CreateModelVersion registers the model at source (an artifact URI) as
// a new version of name, from run runID.
func (c *Client) CreateModelVersion(ctx context.Context, name, source, runID string) (ModelVersion, error) {
	var out struct {
		Version ModelVersion `json:"model_version"`
	}
	err := c.call(ctx, http.MethodPost, "model-versions/create", nil, map[string]any{"name": name, "source": source, "run_id": runID}, &out)
	return out.Version, err
}

// SetAlias points alias of the registered model name at version.
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	return c.call(ctx, http.MethodPost, "registered-models/alias", nil, map[string]any{"name": name, "alias": alias, "version": version}, nil)
}

// AliasVersion is the version alias of name points at.
func (c *Client) AliasVersion(ctx context.Context, name, alias string) (ModelVersion, error) {
	var out struct {
		Version ModelVersion `json:"model_version"`
	}
	err := c.call(ctx, http.MethodGet, "registered-models/alias", url.Values{"name": {name}, "alias": {alias}}, nil, &out)
	return out.Version, err
}

// logMissingInputs logs the datasets the run does not have as inputs yet
// (by name, digest and context).
func (c *Client) logMissingInputs(ctx context.Context, run Run, want []DatasetInput) (int, error) {
	var missing []DatasetInput
	for _, w := range want {
		has := false
		for _, h := range run.Inputs.DatasetInputs {
			has = has || (h.Dataset.Name == w.Dataset.Name && h.Dataset.Digest == w.Dataset.Digest && h.Context() == w.Context())
		}
		if !has {
			missing = append(missing, w)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	return len(missing), c.LogInputs(ctx, run.Info.RunID, missing)
}

// register makes the run's version of r.Model (once: found by the run's
// ID) and points r.Alias at it.
func (c *Client) register(ctx context.Context, run Run, r Registration) (string, error) {
	if err := c.CreateRegisteredModel(ctx, r.Model); err != nil {
		return "", err
	}
	versions, err := c.RunModelVersions(ctx, r.Model, run.Info.RunID)
	if err != nil {
		return "", err
	}
	var v ModelVersion
	if len(versions) > 0 {
		v = versions[0]
	} else {
		source := strings.TrimSuffix(run.Info.ArtifactURI, "/") + "/" + r.Folder
		if v, err = c.CreateModelVersion(ctx, r.Model, source, run.Info.RunID); err != nil {
			return "", err
		}
	}
	if r.Alias == "" {
		return v.Version, nil
	}
	if cur, err := c.AliasVersion(ctx, r.Model, r.Alias); err == nil && cur.Version == v.Version {
		return v.Version, nil
	}
	return v.Version, c.SetAlias(ctx, r.Model, r.Alias, v.Version)
}
