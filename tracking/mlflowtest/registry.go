package mlflowtest

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
)

// A dataset input as MLflow keeps it: an input of the same dataset (name
// and digest) and context is stored once per run, as the SQL store does.
type datasetInput struct {
	Name, Digest, SourceType, Source, Context string
}

// registeredModel is a registry entry: its versions (1, 2, ...) and
// aliases.
type registeredModel struct {
	versions []modelVersion
	aliases  map[string]string // alias -> version
}

type modelVersion struct {
	Version, Source, RunID string
	deleted                bool
}

// DatasetInputs returns a run's dataset inputs (for tests).
func (s *Server) DatasetInputs(runID string) []datasetInput {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.runs[runID]; ok {
		return slices.Clone(r.inputs)
	}
	return nil
}

// ModelVersions returns how many versions the registered model name has,
// and which run the version an alias points at comes from ("" if none).
func (s *Server) ModelVersions(name, alias string) (versions int, aliasRun string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[name]
	if !ok {
		return 0, ""
	}
	if v, ok := m.aliases[alias]; ok {
		n, _ := strconv.Atoi(v)
		aliasRun = m.versions[n-1].RunID
	}
	for _, v := range m.versions {
		if !v.deleted {
			versions++
		}
	}
	return versions, aliasRun
}

// AddModelVersion registers a version of name (made as needed) from run
// runID, as a racing client would.
func (s *Server) AddModelVersion(name, runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.models[name]; !ok {
		s.models[name] = &registeredModel{aliases: map[string]string{}}
	}
	m := s.models[name]
	m.versions = append(m.versions, modelVersion{Version: strconv.Itoa(len(m.versions) + 1), Source: "x", RunID: runID})
}

// Lacks makes the server answer calls to these paths (e.g.
// "runs/log-inputs") as a server without them does: 404, no error code.
func (s *Server) Lacks(paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lacks = append(s.lacks, paths...)
}

func (s *Server) logInputs(body map[string]json.RawMessage) (any, *apiError) {
	r, err := s.activeRun(str(body, "run_id"))
	if err != nil {
		return nil, err
	}
	var in []struct {
		Tags    []struct{ Key, Value string } `json:"tags"`
		Dataset struct {
			Name       string `json:"name"`
			Digest     string `json:"digest"`
			SourceType string `json:"source_type"`
			Source     string `json:"source"`
		} `json:"dataset"`
	}
	if err := json.Unmarshal(body["datasets"], &in); err != nil {
		return nil, fail(400, "MALFORMED_REQUEST", "datasets: %v", err)
	}
	for _, d := range in {
		if d.Dataset.Name == "" || d.Dataset.Digest == "" || d.Dataset.SourceType == "" || d.Dataset.Source == "" {
			return nil, fail(400, "INVALID_PARAMETER_VALUE", "a dataset needs name, digest, source_type and source")
		}
		if len(d.Dataset.Digest) > 36 { // the SQL store's column
			return nil, fail(400, "INVALID_PARAMETER_VALUE", "digest %q is longer than 36", d.Dataset.Digest)
		}
		in := datasetInput{Name: d.Dataset.Name, Digest: d.Dataset.Digest, SourceType: d.Dataset.SourceType, Source: d.Dataset.Source}
		for _, t := range d.Tags {
			if t.Key == "mlflow.data.context" {
				in.Context = t.Value
			}
		}
		if !slices.Contains(r.inputs, in) {
			r.inputs = append(r.inputs, in)
		}
	}
	return map[string]any{}, nil
}

func (r *run) inputsView() map[string]any {
	list := []map[string]any{}
	for _, in := range r.inputs {
		d := map[string]any{"dataset": map[string]string{"name": in.Name, "digest": in.Digest, "source_type": in.SourceType, "source": in.Source}}
		if in.Context != "" {
			d["tags"] = []map[string]string{{"key": "mlflow.data.context", "value": in.Context}}
		}
		list = append(list, d)
	}
	return map[string]any{"dataset_inputs": list}
}

var validModelName = regexp.MustCompile(`^[^/:%]+$`)

func (s *Server) createRegisteredModel(name string) (any, *apiError) {
	if !validModelName.MatchString(name) {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Invalid name %q", name)
	}
	if _, ok := s.models[name]; ok {
		return nil, fail(400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=%s) already exists.", name)
	}
	s.models[name] = &registeredModel{aliases: map[string]string{}}
	return map[string]any{"registered_model": map[string]any{"name": name}}, nil
}

func (s *Server) createModelVersion(body map[string]json.RawMessage) (any, *apiError) {
	name := str(body, "name")
	m, ok := s.models[name]
	if !ok {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=%s not found", name)
	}
	v := modelVersion{Version: strconv.Itoa(len(m.versions) + 1), Source: str(body, "source"), RunID: str(body, "run_id")}
	if v.Source == "" {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'source'")
	}
	m.versions = append(m.versions, v)
	return map[string]any{"model_version": v.view(name)}, nil
}

func (v modelVersion) view(name string) map[string]any {
	return map[string]any{"name": name, "version": v.Version, "source": v.Source, "run_id": v.RunID, "status": "READY"}
}

// The filter ResoMap sends: run_id='…'.
var versionFilter = regexp.MustCompile(`^run_id='([^']*)'$`)

func (s *Server) searchModelVersions(filter string) (any, *apiError) {
	f := versionFilter.FindStringSubmatch(filter)
	if f == nil {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "mlflowtest does not parse the filter %q", filter)
	}
	var out []map[string]any
	for _, name := range slices.Sorted(maps.Keys(s.models)) {
		for _, v := range s.models[name].versions {
			if v.RunID == f[1] && !v.deleted {
				out = append(out, v.view(name))
			}
		}
	}
	if len(out) == 0 {
		return map[string]any{}, nil // the real server leaves an empty list out
	}
	return map[string]any{"model_versions": out}, nil
}

func (s *Server) deleteModelVersion(body map[string]json.RawMessage) (any, *apiError) {
	name, version := str(body, "name"), str(body, "version")
	m, ok := s.models[name]
	n, err := strconv.Atoi(version)
	if !ok || err != nil || n < 1 || n > len(m.versions) || m.versions[n-1].deleted {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=%s, version=%s) not found", name, version)
	}
	m.versions[n-1].deleted = true
	for a, v := range m.aliases {
		if v == version {
			delete(m.aliases, a)
		}
	}
	return map[string]any{}, nil
}

func (s *Server) setAlias(body map[string]json.RawMessage) (any, *apiError) {
	name, alias, version := str(body, "name"), str(body, "alias"), str(body, "version")
	m, ok := s.models[name]
	if !ok {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=%s not found", name)
	}
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 || n > len(m.versions) || m.versions[n-1].deleted {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=%s, version=%s) not found", name, version)
	}
	if !regexp.MustCompile(`^[\w-]+$`).MatchString(alias) || alias == "latest" {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Invalid alias %q", alias)
	}
	m.aliases[alias] = version
	return map[string]any{}, nil
}

func (s *Server) getAlias(name, alias string) (any, *apiError) {
	m, ok := s.models[name]
	if !ok {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=%s not found", name)
	}
	v, ok := m.aliases[alias]
	if !ok {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Registered model alias %s not found.", alias)
	}
	n, _ := strconv.Atoi(v)
	return map[string]any{"model_version": m.versions[n-1].view(name)}, nil
}
