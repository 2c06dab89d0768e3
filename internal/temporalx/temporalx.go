// Package temporalx connects to Temporal the same way in every ResoMap
// binary: the standard TEMPORAL_* environment variables, and search
// attributes registered idempotently.
package temporalx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"

	"github.com/resomap/resomap/workflows"
)

// Options reads the Temporal connection the way the temporal CLI and every
// SDK do (go.temporal.io/sdk/contrib/envconfig): a profile of the TOML file
// (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), then TEMPORAL_ADDRESS
// (default localhost:7233), TEMPORAL_NAMESPACE (default "default"),
// TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH/_KEY_PATH,
// TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME… A half-set
// client certificate pair, an unreadable file or a bad profile is a
// configuration error (IsPermanent): waiting cannot mend it.
func Options(logger *slog.Logger) (client.Options, error) {
	if err := checkTLSFiles(); err != nil {
		return client.Options{}, err
	}
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal connection settings: %w: %w", errPermanent, err)
	}
	if opts.HostPort == "" {
		opts.HostPort = "localhost:7233"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	opts.Logger = sdklog.NewStructuredLogger(logger)
	return opts, nil
}

// checkTLSFiles: a client certificate given without its key (or the key
// without it) is refused, naming the variable that is missing.
func checkTLSFiles() error {
	cert, key := os.Getenv("TEMPORAL_TLS_CLIENT_CERT_PATH"), os.Getenv("TEMPORAL_TLS_CLIENT_KEY_PATH")
	if (cert == "") != (key == "") {
		missing := "TEMPORAL_TLS_CLIENT_KEY_PATH"
		if cert == "" {
			missing = "TEMPORAL_TLS_CLIENT_CERT_PATH"
		}
		return fmt.Errorf("temporal TLS: %w: a client certificate needs both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH; %s is not set", errPermanent, missing)
	}
	return nil
}

// Env is the Temporal address and namespace the environment names.
func Env() (address, namespace string) {
	opts, err := Options(slog.New(slog.DiscardHandler))
	if err != nil {
		return EnvOr("TEMPORAL_ADDRESS", "localhost:7233"), EnvOr("TEMPORAL_NAMESPACE", "default")
	}
	return opts.HostPort, opts.Namespace
}

// Dial connects to the Temporal server named by the environment.
func Dial(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	opts, err := Options(logger)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		if isTLSConfigError(err) {
			return nil, fmt.Errorf("connect to Temporal at %s: %w: %w", opts.HostPort, errPermanent, err)
		}
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s; set TEMPORAL_ADDRESS): %w", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}

// isTLSConfigError: a TLS handshake that failed (a server certificate this
// CA did not sign or that names another server, a client certificate the
// server refuses) fails the same way on every try. gRPC hands the cause
// over as text only.
func isTLSConfigError(err error) bool {
	return strings.Contains(err.Error(), "authentication handshake failed")
}

// errPermanent marks a connection error that retrying cannot mend.
var errPermanent = errors.New("configuration error")

// IsPermanent reports whether a Dial error cannot pass by waiting (a bad
// certificate); a server that does not answer yet may.
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }

// DialAndRegister connects and makes sure ResoMap's search attributes exist:
// what a worker or a starter does first.
func DialAndRegister(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	c, err := Dial(ctx, logger)
	if err != nil {
		return nil, err
	}
	if err := RegisterSearchAttributes(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// EnvOr returns the environment variable name, or def when it is unset.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// RegisterSearchAttributes adds ResoMap's search attributes that the
// namespace lacks; running it again changes nothing.
func RegisterSearchAttributes(ctx context.Context, c client.Client) error {
	_, namespace := Env()
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, sa := range workflows.SearchAttributes {
		if _, ok := have.CustomAttributes[sa.GetName()]; !ok {
			missing[sa.GetName()] = sa.GetValueType()
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		return fmt.Errorf("register search attributes: %w", err)
	}
	return nil
}

// DevServerFlags are the `temporal server start-dev` flags that register
// the search attributes up front.
func DevServerFlags() []string {
	var out []string
	for _, sa := range workflows.SearchAttributes {
		// INDEXED_VALUE_TYPE_KEYWORD is "Keyword" to the CLI.
		t := strings.ToLower(strings.TrimPrefix(sa.GetValueType().String(), "INDEXED_VALUE_TYPE_"))
		out = append(out, "--search-attribute", sa.GetName()+"="+strings.ToUpper(t[:1])+t[1:])
	}
	return out
}
