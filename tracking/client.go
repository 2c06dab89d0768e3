// Package tracking logs trainings to an MLflow tracking server through its
// REST API (/api/2.0/mlflow/...), configured the way every MLflow client is
// (MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN,
// MLFLOW_TRACKING_INSECURE_TLS). client.go speaks HTTP, mlflow.go holds the
// calls ResoMap makes, sync.go brings one training's run up to date with
// what the store holds, idempotently: a sync repeated after any failure
// logs nothing twice and creates no second run.
package tracking

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env names the MLflow client variables this package reads.
const (
	EnvURI         = "MLFLOW_TRACKING_URI"
	EnvUsername    = "MLFLOW_TRACKING_USERNAME"
	EnvPassword    = "MLFLOW_TRACKING_PASSWORD"
	EnvToken       = "MLFLOW_TRACKING_TOKEN"
	EnvInsecureTLS = "MLFLOW_TRACKING_INSECURE_TLS"
	EnvExperiment  = "MLFLOW_EXPERIMENT_NAME"
)

// Client calls one MLflow tracking server.
type Client struct {
	base  *url.URL
	http  *http.Client
	auth  func(*http.Request)
	where string // the server, for messages (no credentials)
}

// Credentials are how a client authenticates: a token (bearer), or a user
// name and password (basic), or nothing.
type Credentials struct {
	Username, Password, Token string
	InsecureTLS               bool
}

// CredentialsFromEnv reads the MLflow client variables; getenv is
// os.Getenv outside tests.
func CredentialsFromEnv(getenv func(string) string) (Credentials, error) {
	c := Credentials{Username: getenv(EnvUsername), Password: getenv(EnvPassword), Token: getenv(EnvToken)}
	if (c.Username == "") != (c.Password == "") {
		return c, fmt.Errorf("tracking: set both %s and %s, or neither", EnvUsername, EnvPassword)
	}
	if v := getenv(EnvInsecureTLS); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("tracking: %s=%q: want true or false", EnvInsecureTLS, v)
		}
		c.InsecureTLS = b
	}
	return c, nil
}

// New makes a client of the server at uri (http or https; DagsHub's
// https://dagshub.com/USER/REPO.mlflow included).
func New(uri string, cred Credentials) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(uri, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracking: URI %q: want http(s)://host[:port][/path] (a file or databricks URI is not a tracking server ResoMap can reach over REST)", uri)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cred.InsecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it (MLFLOW_TRACKING_INSECURE_TLS)
	}
	c := &Client{base: u, where: u.Redacted(), auth: func(*http.Request) {},
		// A slow server must not hold a sync for ever; the caller retries.
		http: &http.Client{Transport: tr, Timeout: 2 * time.Minute, CheckRedirect: sameOriginRedirect(u)}}
	switch {
	case cred.Token != "":
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+cred.Token) }
	case cred.Username != "":
		c.auth = func(r *http.Request) { r.SetBasicAuth(cred.Username, cred.Password) }
	}
	return c, nil
}

// FromEnv makes a client of uri ("": MLFLOW_TRACKING_URI) with the
// environment's credentials, which go only to the server the environment
// names (ForServer).
func FromEnv(uri string) (*Client, error) {
	return fromEnv(uri, os.Getenv)
}

func fromEnv(uri string, getenv func(string) string) (*Client, error) {
	if uri == "" {
		uri = getenv(EnvURI)
	}
	cred, err := CredentialsFromEnv(getenv)
	if err != nil {
		return nil, Permanent(err)
	}
	if err := cred.ForServer(uri, getenv(EnvURI)); err != nil {
		return nil, Permanent(err)
	}
	return New(uri, cred)
}

// ErrOtherServer refuses to send a worker's credentials to a server its own
// environment does not name: a spec (anyone who can start a workflow)
// chooses where runs go, not where the token goes.
var ErrOtherServer = errors.New("tracking: credentials are sent only to this worker's own tracking server")

// ForServer says whether credentials read from the environment may go to
// the server at uri: only when they are empty, or when uri is the server
// own names (the environment's MLFLOW_TRACKING_URI: the same scheme, so
// plain http only where the worker's own URI says http; the same host and
// port; the same path, since one host serves many servers, as DagsHub's
// /USER/REPO.mlflow).
func (c Credentials) ForServer(uri, own string) error {
	if c.Token == "" && c.Username == "" {
		return nil
	}
	if own == "" {
		return fmt.Errorf("%w: %s or %s is set, but %s is not, so no server is known to be theirs (set it on the worker)",
			ErrOtherServer, EnvToken, EnvUsername, EnvURI)
	}
	if !sameServer(uri, own) {
		return fmt.Errorf("%w: the sweep names %s, this worker's %s is %s (track to it, or leave tracking.uri out)",
			ErrOtherServer, redactURI(uri), EnvURI, redactURI(own))
	}
	return nil
}

// sameServer: two tracking URIs name one server (scheme, host, port and
// path alike; default ports and a trailing slash apart).
func sameServer(a, b string) bool {
	ua, errA := url.Parse(strings.TrimSuffix(a, "/"))
	ub, errB := url.Parse(strings.TrimSuffix(b, "/"))
	if errA != nil || errB != nil || ua.Host == "" {
		return false
	}
	return sameOrigin(ua, ub) && ua.Path == ub.Path && ua.User == nil
}

// sameOrigin: two URLs have one scheme, host and port (default ports
// apart).
func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// sameOriginRedirect follows a redirect, sending the credentials along
// only to the server's own scheme, host and port: net/http would carry
// them to the same host on another port or scheme, and to its subdomains.
// (A redirect elsewhere, e.g. to a presigned store URL, goes without them.)
func sameOriginRedirect(base *url.URL) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !sameOrigin(req.URL, base) {
			req.Header.Del("Authorization")
		}
		return nil
	}
}

// redactURI is a URI without the credentials it may carry.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(an unreadable URI)"
	}
	return u.Redacted()
}

// RunURL is a run's page in the tracking server's UI.
func (c *Client) RunURL(experimentID, runID string) string {
	u := *c.base
	u.User = nil
	return u.String() + "/#/experiments/" + experimentID + "/runs/" + runID
}

// String names the server (no credentials).
func (c *Client) String() string { return c.where }

// APIError is an answer other than 2xx.
type APIError struct {
	Status  int
	Code    string // MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message string
	Call    string // method and path
}

func (e *APIError) Error() string {
	msg := e.Message
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // MLflow appends SQL and tracebacks: one line is enough
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = " (check " + EnvToken + " or " + EnvUsername + "/" + EnvPassword + ")"
	case http.StatusForbidden:
		hint = " (the credentials may not write to this experiment)"
	}
	if e.Code != "" {
		return fmt.Sprintf("mlflow %s: %d %s: %s%s", e.Call, e.Status, e.Code, msg, hint)
	}
	return fmt.Sprintf("mlflow %s: %d %s%s", e.Call, e.Status, http.StatusText(e.Status), hint)
}

// Retryable says whether err may pass if the call is made again: a server
// that is down, slow or failing (5xx, 429), not bad input nor credentials.
func Retryable(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.Status >= 500 || api.Status == http.StatusTooManyRequests || notActive(err)
	}
	var perm *permanent
	return !errors.As(err, &perm)
}

// permanent marks an error that no retry mends (a wrong URI, a deleted
// experiment).
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Retryable says false.
func Permanent(err error) error { return &permanent{err} }

// IsCode says whether err is an MLflow answer with error code code.
func IsCode(err error, code string) bool {
	var api *APIError
	return errors.As(err, &api) && api.Code == code
}

// call sends a JSON request (GET with query q, or POST with body in) and
// decodes the answer into out (nil: ignored).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := *c.base
	u.Path += "/api/2.0/mlflow/" + path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json") // MLflow refuses POSTs without it
	}
	return c.do(req, method+" "+path, out)
}

func (c *Client) do(req *http.Request, what string, out any) error {
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("mlflow %s at %s: %w", what, c.where, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("mlflow %s at %s: reading the answer: %w", what, c.where, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode, Call: what}
		var body struct {
			Code    string `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &body) == nil {
			e.Code, e.Message = body.Code, body.Message
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		// An HTML page where JSON was due: not a tracking server's API.
		return Permanent(fmt.Errorf("mlflow %s at %s: answer is not MLflow's JSON (%.60q): is the URI the tracking server's?", what, c.where, b))
	}
	return nil
}
