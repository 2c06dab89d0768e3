package tracking

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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
// from run runID, lowest first. The search is by the run's ID alone (a
// plainID: nothing to quote) and the name compared here.
func (c *Client) RunModelVersions(ctx context.Context, name, runID string) ([]ModelVersion, error) {
	var out struct {
		Versions []ModelVersion `json:"model_versions"` // absent when none
	}
	if !plainID.MatchString(runID) {
		return nil, fmt.Errorf("%w: run ID %q", errUnquotableID, runID)
	}
	filter := fmt.Sprintf("run_id='%s'", runID)
	if err := c.call(ctx, http.MethodGet, "model-versions/search", url.Values{"filter": {filter}}, nil, &out); err != nil {
		return nil, err
	}
	var mine []ModelVersion
	for _, v := range out.Versions {
		if v.Name == name {
			mine = append(mine, v)
		}
	}
	slices.SortFunc(mine, func(a, b ModelVersion) int { return cmp.Compare(versionNumber(a), versionNumber(b)) })
	return mine, nil
}

// plainID is a run ID that needs no escaping in a filter's quotes
// (MLflow's are hex; other servers' names of letters, digits, _ and -).
var plainID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// errUnquotableID: a run ID this client will not put in a search filter;
// the registration is left out, not the run.
var errUnquotableID = errors.New("a run ID with other characters than letters, digits, _ and -")

func versionNumber(v ModelVersion) int {
	n, _ := strconv.Atoi(v.Version)
	return n
}

// DeleteModelVersion deletes a version of a registered model.
func (c *Client) DeleteModelVersion(ctx context.Context, name, version string) error {
	return c.call(ctx, http.MethodDelete, "model-versions/delete", nil, map[string]any{"name": name, "version": version}, nil)
}

// RegisteredModelName is name as MLflow's registries take it everywhere:
// letters, digits, '_' and '-' ('.' is a namespace separator in Unity
// Catalog; ':' and '/' are refused by some). A name that had to change
// gets a short hash of itself, so that two names mapping alike ("exp.1",
// "exp_1") stay two registered models.
func RegisteredModelName(name string) string {
	out := strings.Map(func(r rune) rune {
		if r < 128 && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, name)
	if out != name {
		sum := sha256.Sum256([]byte(name))
		out += "-" + hex.EncodeToString(sum[:3])
	}
	return out
}

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
		if !slices.ContainsFunc(run.Inputs.DatasetInputs, func(h DatasetInput) bool {
			return h.Dataset.Name == w.Dataset.Name && h.Dataset.Digest == w.Dataset.Digest && h.Context() == w.Context()
		}) {
			missing = append(missing, w)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	return len(missing), c.LogInputs(ctx, run.Info.RunID, missing)
}

// register makes the run's version of r.Model (once: found by the run's
// ID; two syncs that both made one keep the lowest) and points r.Alias at
// it.
func (c *Client) register(ctx context.Context, run Run, r Registration) (string, error) {
	if err := c.CreateRegisteredModel(ctx, r.Model); err != nil {
		return "", err
	}
	versions, err := c.RunModelVersions(ctx, r.Model, run.Info.RunID)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 {
		source := strings.TrimSuffix(run.Info.ArtifactURI, "/") + "/" + r.Folder
		if _, err = c.CreateModelVersion(ctx, r.Model, source, run.Info.RunID); err != nil {
			return "", err
		}
		if versions, err = c.RunModelVersions(ctx, r.Model, run.Info.RunID); err != nil {
			return "", err
		}
		if len(versions) == 0 {
			return "", fmt.Errorf("mlflow: the version of %s made from run %s is not found", r.Model, run.Info.RunID)
		}
	}
	v := versions[0]
	for _, extra := range versions[1:] { // a racing sync's
		if err := c.DeleteModelVersion(ctx, r.Model, extra.Version); err != nil && !IsCode(err, "RESOURCE_DOES_NOT_EXIST") {
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
