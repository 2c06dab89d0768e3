// Package redact makes what a spec names fit to store and show: an URL's
// credentials (user information, a presigned URL's query) stay out of the
// workflow history's results, the report and MLflow.
package redact

import "net/url"

// URL is s without its user information and with its query's values
// elided (a presigned URL's signature is a credential); s unchanged when
// it is no URL with a host (a path, torchvision:NAME).
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	if u.User != nil {
		u.User = url.User("…")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"…"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
