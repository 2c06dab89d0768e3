package temporalx

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The connection is read as the temporal CLI reads it: a TOML profile,
// then TEMPORAL_* variables over it; a half-set client pair is a
// permanent error naming the missing variable.
func TestOptionsFollowTheCLIsConventions(t *testing.T) {
	for _, v := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	logger := slog.New(slog.DiscardHandler)
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(t.TempDir(), "none.toml"))
	opts, err := Options(logger)
	if err != nil || opts.HostPort != "localhost:7233" || opts.Namespace != "default" || opts.ConnectionOptions.TLS != nil {
		t.Fatalf("defaults: %+v, %v", opts, err)
	}

	file := filepath.Join(t.TempDir(), "temporal.toml")
	toml := "[profile.cloud]\naddress = \"ns.acct.tmprl.cloud:7233\"\nnamespace = \"ns.acct\"\napi_key = \"k\"\n"
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", file)
	t.Setenv("TEMPORAL_PROFILE", "cloud")
	opts, err = Options(logger)
	if err != nil || opts.HostPort != "ns.acct.tmprl.cloud:7233" || opts.Namespace != "ns.acct" ||
		opts.Credentials == nil || opts.ConnectionOptions.TLS == nil {
		t.Fatalf("profile with an API key: %+v, %v (want its address, namespace, credentials and TLS)", opts, err)
	}
	t.Setenv("TEMPORAL_NAMESPACE", "other")
	if opts, _ = Options(logger); opts.Namespace != "other" {
		t.Errorf("TEMPORAL_NAMESPACE does not override the profile: %q", opts.Namespace)
	}

	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", "/k.pem")
	_, err = Options(logger)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "TEMPORAL_TLS_CLIENT_CERT_PATH is not set") {
		t.Errorf("a key without its certificate: %v", err)
	}
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "/no/such/cert.pem")
	if _, err = Options(logger); err == nil || !IsPermanent(err) {
		t.Errorf("unreadable certificate files: %v, want a permanent error", err)
	}
}
