// Package temporalx connects to Temporal the same way in every ResoMap
// binary: the standard TEMPORAL_* environment variables, and search
// attributes registered idempotently.
package temporalx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/resomap/resomap/workflows"
)

// Env reads TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE
// (default "default"), TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH and
// TEMPORAL_TLS_CLIENT_KEY_PATH.
func Env() (address, namespace string) {
	address, namespace = os.Getenv("TEMPORAL_ADDRESS"), os.Getenv("TEMPORAL_NAMESPACE")
	if address == "" {
		address = "localhost:7233"
	}
	if namespace == "" {
		namespace = "default"
	}
	return address, namespace
}

// Dial connects to the Temporal server named by the environment.
func Dial(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	address, namespace := Env()
	opts := client.Options{HostPort: address, Namespace: namespace, Logger: sdklog.NewStructuredLogger(logger)}
	if key := os.Getenv("TEMPORAL_API_KEY"); key != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
		opts.ConnectionOptions.TLS = &tls.Config{}
	}
	if cert, key := os.Getenv("TEMPORAL_TLS_CLIENT_CERT_PATH"), os.Getenv("TEMPORAL_TLS_CLIENT_KEY_PATH"); cert != "" && key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS client certificate: %w: %w", errPermanent, err)
		}
		opts.ConnectionOptions.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s; set TEMPORAL_ADDRESS): %w", address, namespace, err)
	}
	return c, nil
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
