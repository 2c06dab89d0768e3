// Package mlflowtest is an in-memory MLflow tracking server for tests: the
// part of the REST API ResoMap uses, with the real server's (2.10) quirks —
// lower-case JSON field names only (a field spelled otherwise is ignored,
// as the real server's protobuf parser does), runs/search POST only and
// answering {} when nothing matches, POSTs refused without a JSON content
// type, a param's value fixed once logged, metric points identical in key,
// step, timestamp and value stored once, log-batch metrics needing a
// timestamp, errors as {"error_code", "message"}. A call outside that part
// is answered 501 and listed by Unexpected, so a test sees it. Dataset
// inputs and the model registry (versions by run, aliases) are kept too,
// answered as MLflow 2.10.2 answered them by hand.
package mlflowtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running test server.
type Server struct {
	*httptest.Server
	mu          sync.Mutex
	experiments []*experiment
	runs        map[string]*run
	models      map[string]*registeredModel
	lacks       []string // paths answered as by a server without them
	nextRun     int
	unexpected  []string
	calls       map[string]int
	token       string // required bearer token ("": none)
	failWith    int    // answer every API call with this status (0: serve)
	down        bool   // drop every connection
	// Before, when set, is called with each request's method and path
	// before it is served (under no lock); tests use it to kill a worker
	// right after a given call.
	Before func(method, path string)
}

type experiment struct {
	id, name, stage string
}

type run struct {
	id, experiment, name, status string
	start, end                   int64
	stage                        string
	params, tags                 []kv
	metrics                      []point
	artifacts                    map[string][]byte
	inputs                       []datasetInput
}

type kv struct{ Key, Value string }

type point struct {
	Key       string
	Value     float64
	Timestamp int64
	Step      int64
}

// New starts a server; Close stops it.
func New() *Server {
	s := &Server{runs: map[string]*run{}, calls: map[string]int{}, models: map[string]*registeredModel{}}
	s.experiments = []*experiment{{id: "0", name: "Default", stage: "active"}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// RequireToken makes every call need "Authorization: Bearer token".
func (s *Server) RequireToken(token string) { s.mu.Lock(); s.token = token; s.mu.Unlock() }

// FailWith answers every API call with status (0: serve again).
func (s *Server) FailWith(status int) { s.mu.Lock(); s.failWith = status; s.mu.Unlock() }

// SetDown drops every connection while down (a server that is gone).
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// DeleteExperiment marks an experiment deleted, as the UI does.
func (s *Server) DeleteExperiment(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.experiments {
		if e.name == name {
			e.stage = "deleted"
		}
	}
}

// Unexpected lists the calls outside the API this server implements.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unexpected)
}

// Calls counts the calls served by path (e.g. "runs/create").
func (s *Server) Calls(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[path] }

// RunView is a run as a test reads it.
type RunView struct {
	ID, Experiment, Name, Status, Stage string
	Start, End                          int64
	Params, Tags                        map[string]string
	Metrics                             map[string][]point
	Artifacts                           map[string]int // path -> size
}

// Runs returns every run (deleted ones too), by ID order.
func (s *Server) Runs() []RunView {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RunView
	for _, r := range s.runs {
		v := RunView{ID: r.id, Experiment: r.experiment, Name: r.name, Status: r.status, Stage: r.stage, Start: r.start, End: r.end,
			Params: map[string]string{}, Tags: map[string]string{}, Metrics: map[string][]point{}, Artifacts: map[string]int{}}
		for _, p := range r.params {
			v.Params[p.Key] = p.Value
		}
		for _, t := range r.tags {
			v.Tags[t.Key] = t.Value
		}
		for _, m := range r.metrics {
			v.Metrics[m.Key] = append(v.Metrics[m.Key], m)
		}
		for k, b := range r.artifacts {
			v.Artifacts[k] = len(b)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b RunView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Steps returns the steps of a metric's points, in logged order.
func (v RunView) Steps(key string) []int64 {
	var out []int64
	for _, p := range v.Metrics[key] {
		out = append(out, p.Step)
	}
	return out
}

// apiError is MLflow's error answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func fail(status int, code, format string, a ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, a...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Before != nil {
		s.Before(r.Method, r.URL.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
	}
	if s.failWith != 0 {
		writeErr(w, fail(s.failWith, "INTERNAL_ERROR", "test server failing on purpose"))
		return
	}
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "You are not authenticated.")
		return
	}
	out, err := s.route(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]string{"error_code": e.code, "message": e.msg})
}

const (
	apiPrefix      = "/api/2.0/mlflow/"
	artifactPrefix = "/api/2.0/mlflow-artifacts/artifacts/"
)

func (s *Server) route(r *http.Request) (any, *apiError) {
	if rest, ok := strings.CutPrefix(r.URL.Path, artifactPrefix); ok && r.Method == http.MethodPut {
		s.calls["artifacts/put"]++
		return s.putArtifact(rest, r.Body)
	}
	p, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	if !ok {
		return s.unknown(r)
	}
	s.calls[p]++
	if slices.Contains(s.lacks, p) {
		return nil, &apiError{status: 404, msg: "<!doctype html><title>404 Not Found</title>"}
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
		return nil, fail(400, "BAD_REQUEST", "POST needs Content-Type: application/json")
	}
	body, apiErr := requestBody(r)
	if apiErr != nil {
		return nil, apiErr
	}
	q := r.URL.Query()
	switch r.Method + " " + p {
	case "GET experiments/get-by-name":
		return s.experimentByName(q.Get("experiment_name"))
	case "POST experiments/create":
		return s.createExperiment(str(body, "name"))
	case "POST runs/search":
		return s.search(body)
	case "POST runs/create":
		return s.createRun(body)
	case "GET runs/get":
		return s.getRun(q.Get("run_id"))
	case "POST runs/delete":
		return s.deleteRun(str(body, "run_id"))
	case "POST runs/update":
		return s.updateRun(body)
	case "POST runs/log-batch":
		return s.logBatch(body)
	case "GET metrics/get-history":
		return s.history(q.Get("run_id"), q.Get("metric_key"))
	case "GET artifacts/list":
		return s.listArtifacts(q.Get("run_id"), q.Get("path"))
	case "POST runs/log-inputs":
		return s.logInputs(body)
	case "POST registered-models/create":
		return s.createRegisteredModel(str(body, "name"))
	case "POST model-versions/create":
		return s.createModelVersion(body)
	case "GET model-versions/search":
		return s.searchModelVersions(q.Get("filter"))
	case "DELETE model-versions/delete":
		return s.deleteModelVersion(body)
	case "POST registered-models/alias":
		return s.setAlias(body)
	case "GET registered-models/alias":
		return s.getAlias(q.Get("name"), q.Get("alias"))
	}
	return s.unknown(r)
}

// requestBody is a POST's or DELETE's JSON body, refused as the real server
// refuses it.
func requestBody(r *http.Request) (map[string]json.RawMessage, *apiError) {
	var body map[string]json.RawMessage
	if r.Method != http.MethodPost && r.Method != http.MethodDelete {
		return body, nil
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return nil, fail(400, "MALFORMED_REQUEST", "bad JSON: %v", err)
	}
	for _, list := range []string{"metrics", "params", "tags", "experiment_ids"} {
		if v, ok := body[list]; ok && string(v) == "null" {
			// The real server: TypeError: 'NoneType' object is not iterable.
			return nil, fail(500, "", "a null %s list", list)
		}
	}
	return body, nil
}

func (s *Server) unknown(r *http.Request) (any, *apiError) {
	s.unexpected = append(s.unexpected, r.Method+" "+r.URL.Path)
	return nil, fail(501, "NOT_IMPLEMENTED", "mlflowtest does not implement %s %s", r.Method, r.URL.Path)
}

// str reads a lower-case field exactly (a field in another case is absent).
func str(body map[string]json.RawMessage, key string) string {
	var v string
	json.Unmarshal(body[key], &v)
	return v
}

func num(body map[string]json.RawMessage, key string) (int64, bool) {
	raw, ok := body[key]
	if !ok {
		return 0, false
	}
	var v json.Number
	if json.Unmarshal(raw, &v) != nil {
		var s string // protobuf JSON may quote int64s
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		v = json.Number(s)
	}
	n, err := v.Int64()
	return n, err == nil
}

// batchLimits are MLflow's on one log-batch request (mlflow/utils/
// validation.py: _validate_batch_log_limits, MAX_BATCH_LOG_REQUEST_SIZE).
func batchLimits(body map[string]json.RawMessage) *apiError {
	count := func(k string) int {
		var list []json.RawMessage
		json.Unmarshal(body[k], &list)
		return len(list)
	}
	m, p, t := count("metrics"), count("params"), count("tags")
	size := 0 // as sent (escapes included): the raw JSON of each field
	for _, raw := range body {
		size += len(raw)
	}
	switch {
	case m > 1000:
		return fail(400, "INVALID_PARAMETER_VALUE", "A batch logging request can contain at most 1000 metrics. Got %d metrics. Please split up metrics across multiple requests and try again.", m)
	case p > 100:
		return fail(400, "INVALID_PARAMETER_VALUE", "A batch logging request can contain at most 100 params. Got %d params. Please split up params across multiple requests and try again.", p)
	case t > 100:
		return fail(400, "INVALID_PARAMETER_VALUE", "A batch logging request can contain at most 100 tags. Got %d tags. Please split up tags across multiple requests and try again.", t)
	case m+p+t > 1000:
		return fail(400, "INVALID_PARAMETER_VALUE", "A batch logging request can contain at most 1000 metrics, params, and tags in total. Received a total of %d metrics, params, and tags. Please split up metrics, params, and tags across multiple requests and try again.", m+p+t)
	case size > 1_000_000:
		return fail(400, "INVALID_PARAMETER_VALUE", "Batched logging API requests must be at most 1 MB in size, got size %d bytes", size)
	}
	return nil
}

func pairs(raw json.RawMessage) []kv {
	var list []map[string]json.RawMessage
	json.Unmarshal(raw, &list)
	var out []kv
	for _, m := range list {
		out = append(out, kv{str(m, "key"), str(m, "value")})
	}
	return out
}

func (s *Server) experimentByName(name string) (any, *apiError) {
	for _, e := range s.experiments {
		if e.name == name {
			return map[string]any{"experiment": map[string]any{"experiment_id": e.id, "name": e.name, "lifecycle_stage": e.stage,
				"artifact_location": "mlflow-artifacts:/" + e.id}}, nil
		}
	}
	return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Could not find experiment with name '%s'", name)
}

func (s *Server) createExperiment(name string) (any, *apiError) {
	if name == "" {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'")
	}
	for _, e := range s.experiments {
		if e.name == name {
			return nil, fail(400, "RESOURCE_ALREADY_EXISTS", "Experiment(name=%s) already exists.", name)
		}
	}
	e := &experiment{id: strconv.Itoa(len(s.experiments)), name: name, stage: "active"}
	s.experiments = append(s.experiments, e)
	return map[string]any{"experiment_id": e.id}, nil
}

func (s *Server) run(id string) (*run, *apiError) {
	r, ok := s.runs[id]
	if !ok {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "Run '%s' not found", id)
	}
	return r, nil
}

func (s *Server) activeRun(id string) (*run, *apiError) {
	r, err := s.run(id)
	if err == nil && r.stage != "active" {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "The run %s must be in the 'active' state. Current state is deleted.", id)
	}
	return r, err
}

func (s *Server) createRun(body map[string]json.RawMessage) (any, *apiError) {
	exp := str(body, "experiment_id")
	if !slices.ContainsFunc(s.experiments, func(e *experiment) bool { return e.id == exp && e.stage == "active" }) {
		return nil, fail(404, "RESOURCE_DOES_NOT_EXIST", "No Experiment with id=%s exists", exp)
	}
	s.nextRun++
	start, ok := num(body, "start_time")
	if !ok {
		start = time.Now().UnixMilli()
	}
	r := &run{id: fmt.Sprintf("%032x", s.nextRun*7919+1000003), experiment: exp, name: str(body, "run_name"), status: "RUNNING",
		start: start, stage: "active", tags: pairs(body["tags"]), artifacts: map[string][]byte{}}
	r.tags = append(r.tags, kv{"mlflow.runName", r.name})
	s.runs[r.id] = r
	return map[string]any{"run": r.view()}, nil
}

func (r *run) view() map[string]any {
	tags := []map[string]string{}
	for _, t := range r.tags {
		tags = append(tags, map[string]string{"key": t.Key, "value": t.Value})
	}
	params := []map[string]string{}
	for _, p := range r.params {
		params = append(params, map[string]string{"key": p.Key, "value": p.Value})
	}
	info := map[string]any{"run_id": r.id, "run_uuid": r.id, "experiment_id": r.experiment, "run_name": r.name, "status": r.status,
		"start_time": r.start, "artifact_uri": "mlflow-artifacts:/" + r.experiment + "/" + r.id + "/artifacts", "lifecycle_stage": r.stage}
	if r.end != 0 {
		info["end_time"] = r.end
	}
	return map[string]any{"info": info, "data": map[string]any{"tags": tags, "params": params}, "inputs": r.inputsView()}
}

func (s *Server) getRun(id string) (any, *apiError) {
	r, err := s.run(id)
	if err != nil {
		return nil, err
	}
	return map[string]any{"run": r.view()}, nil
}

func (s *Server) deleteRun(id string) (any, *apiError) {
	r, err := s.run(id)
	if err != nil {
		return nil, err
	}
	r.stage = "deleted"
	return map[string]any{}, nil
}

var validStatus = []string{"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}

func (s *Server) updateRun(body map[string]json.RawMessage) (any, *apiError) {
	r, err := s.activeRun(str(body, "run_id"))
	if err != nil {
		return nil, err
	}
	st := str(body, "status")
	if !slices.Contains(validStatus, st) {
		return nil, fail(400, "INVALID_PARAMETER_VALUE", "Invalid value %q for parameter 'status'", st)
	}
	r.status = st
	if end, ok := num(body, "end_time"); ok {
		r.end = end
	}
	return map[string]any{"run_info": r.view()["info"]}, nil
}

func (s *Server) logBatch(body map[string]json.RawMessage) (any, *apiError) {
	r, err := s.activeRun(str(body, "run_id"))
	if err != nil {
		return nil, err
	}
	if err := batchLimits(body); err != nil {
		return nil, err
	}
	params := pairs(body["params"])
	for _, p := range params {
		for _, q := range r.params {
			if q.Key == p.Key && q.Value != p.Value {
				return nil, fail(400, "INVALID_PARAMETER_VALUE", "Changing param values is not allowed. Param with key='%s' was already logged with value='%s'", p.Key, q.Value)
			}
		}
	}
	var raw []map[string]json.RawMessage
	json.Unmarshal(body["metrics"], &raw)
	var points []point
	for i, m := range raw {
		ts, ok := num(m, "timestamp")
		if !ok {
			return nil, fail(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'metrics[%d].timestamp'", i)
		}
		var v float64
		if json.Unmarshal(m["value"], &v) != nil {
			return nil, fail(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'metrics[%d].value'", i)
		}
		step, _ := num(m, "step")
		points = append(points, point{str(m, "key"), v, ts, step})
	}
	for _, p := range params {
		if !slices.Contains(r.params, p) {
			r.params = append(r.params, p)
		}
	}
	for _, t := range pairs(body["tags"]) {
		i := slices.IndexFunc(r.tags, func(u kv) bool { return u.Key == t.Key })
		if i >= 0 {
			r.tags[i] = t
		} else {
			r.tags = append(r.tags, t)
		}
	}
	for _, p := range points {
		if !slices.Contains(r.metrics, p) { // the SQL store's primary key
			r.metrics = append(r.metrics, p)
		}
	}
	return map[string]any{}, nil
}

func (s *Server) history(id, key string) (any, *apiError) {
	r, err := s.run(id)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, m := range r.metrics {
		if m.Key == key {
			out = append(out, map[string]any{"key": m.Key, "value": m.Value, "timestamp": m.Timestamp, "step": m.Step})
		}
	}
	if len(out) == 0 {
		return map[string]any{}, nil
	}
	return map[string]any{"metrics": out}, nil
}

// A search filter: clauses joined by "and", each a tag or the status.
var clause = regexp.MustCompile("^\\s*(tags\\.`([^`]+)`|tags\\.([\\w.]+)|attributes\\.status)\\s*=\\s*'([^']*)'\\s*$")

func (s *Server) search(body map[string]json.RawMessage) (any, *apiError) {
	var exps []string
	json.Unmarshal(body["experiment_ids"], &exps)
	type cond struct{ tag, status, value string }
	var conds []cond
	if f := str(body, "filter"); f != "" {
		for _, c := range regexp.MustCompile(`(?i)\s+and\s+`).Split(f, -1) {
			m := clause.FindStringSubmatch(c)
			if m == nil {
				return nil, fail(400, "INVALID_PARAMETER_VALUE", "mlflowtest: filter clause %q not understood", c)
			}
			tag := m[2] + m[3]
			if tag == "" {
				conds = append(conds, cond{status: "status", value: m[4]})
			} else {
				conds = append(conds, cond{tag: tag, value: m[4]})
			}
		}
	}
	var found []*run
	for _, r := range s.runs {
		if !slices.Contains(exps, r.experiment) || r.stage != "active" {
			continue
		}
		ok := true
		for _, c := range conds {
			if c.status != "" {
				ok = ok && r.status == c.value
			} else {
				i := slices.IndexFunc(r.tags, func(t kv) bool { return t.Key == c.tag })
				ok = ok && i >= 0 && r.tags[i].Value == c.value
			}
		}
		if ok {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return map[string]any{}, nil // the real server's answer
	}
	slices.SortFunc(found, func(a, b *run) int { return int(a.start - b.start) })
	var out []any
	for _, r := range found {
		out = append(out, r.view())
	}
	return map[string]any{"runs": out}, nil
}

func (s *Server) putArtifact(rest string, body io.Reader) (any, *apiError) {
	// <experiment>/<run>/artifacts/<path>
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 4 || parts[2] != "artifacts" {
		return nil, fail(400, "BAD_REQUEST", "artifact path %q", rest)
	}
	r, err := s.run(parts[1])
	if err != nil {
		return nil, err
	}
	b, rerr := io.ReadAll(body)
	if rerr != nil {
		return nil, fail(400, "BAD_REQUEST", "reading body: %v", rerr)
	}
	r.artifacts[parts[3]] = b
	return map[string]any{}, nil
}

func (s *Server) listArtifacts(id, dir string) (any, *apiError) {
	r, err := s.run(id)
	if err != nil {
		return nil, err
	}
	var files []map[string]any
	for p, b := range r.artifacts {
		if parent(p) == dir {
			files = append(files, map[string]any{"path": p, "is_dir": false, "file_size": len(b)})
		}
	}
	slices.SortFunc(files, func(a, b map[string]any) int { return strings.Compare(a["path"].(string), b["path"].(string)) })
	out := map[string]any{"root_uri": "mlflow-artifacts:/" + r.experiment + "/" + r.id + "/artifacts"}
	if len(files) > 0 {
		out["files"] = files
	}
	return out, nil
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
