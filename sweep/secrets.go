package sweep

import (
	"fmt"
	"net/url"
)

// CheckURLs refuses URLs with credentials (https://user:token@…) where a
// spec names one: the spec is stored and shown (workflow history,
// spec.json, the report, MLflow). It is not part of Validate, which runs in
// workflow code: a sweep started before this rule must replay as it ran;
// the starter checks a spec and Prepare a config instead.
func (s Spec) CheckURLs() error {
	if urlHasCredentials(s.Tracking.URI) {
		return fmt.Errorf("%w: tracking.uri: an URL with credentials (user:secret@): the spec is stored and shown; a worker's credentials come from its MLFLOW_TRACKING_* environment", ErrInvalid)
	}
	for _, set := range s.Scripts {
		if urlHasCredentials(set.File) {
			return errScriptURL
		}
	}
	return checkWeightsURL(s.Init.Weights)
}

var errScriptURL = fmt.Errorf("%w: scripts: a file URL with credentials (user:secret@): the spec is stored and shown; serve the file without them, or give a path", ErrInvalid)

// CheckURLs is Spec.CheckURLs for one training's config.
func (c Config) CheckURLs() error {
	if c.Script != nil && urlHasCredentials(c.Script.File) {
		return errScriptURL
	}
	if c.Init == nil {
		return nil
	}
	return checkWeightsURL(c.Init.Weights)
}

func checkWeightsURL(w string) error {
	if urlHasCredentials(w) {
		return fmt.Errorf("%w: init.weights: an URL with credentials (user:secret@): the spec is stored and shown (workflow history, spec.json, the report, MLflow); serve the file without them, or give a path", ErrInvalid)
	}
	return nil
}

// urlHasCredentials says whether s is an URL with user information.
func urlHasCredentials(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && u.User != nil
}
