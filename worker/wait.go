package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/resomap/resomap/internal/temporalx"
	"github.com/resomap/resomap/store"
)

// waitFor retries try until it succeeds, fails for good (permanent says so)
// or ctx ends: a worker started while Temporal or its store is briefly down
// waits for them, with one log line per failed attempt, instead of exiting.
func waitFor[T any](ctx context.Context, logger *slog.Logger, what string, try func(context.Context) (T, error), permanent func(error) bool) (T, error) {
	delay := time.Second
	for attempt := 1; ; attempt++ {
		v, err := try(ctx)
		if err == nil || permanent(err) {
			return v, err
		}
		logger.Warn("waiting for "+what, "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("gave up waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// openStore waits for the store: only an unreachable server is worth
// waiting for; a missing bucket or bad credentials are not.
// Every object it stores names this worker (host/pid) in S3's metadata;
// RESOMAP_S3_CREATE_BUCKET=true creates a missing bucket (a fresh stack).
func openStore(ctx context.Context, logger *slog.Logger, url string) (store.Store, error) {
	opts := []store.Option{store.WriterID(writerID())}
	if os.Getenv("RESOMAP_S3_CREATE_BUCKET") == "true" {
		opts = append(opts, store.CreateBucket())
	}
	return waitFor(ctx, logger, "the store", func(ctx context.Context) (store.Store, error) {
		return store.Open(ctx, url, opts...)
	}, func(err error) bool { return !errors.Is(err, store.ErrUnreachable) })
}

// writerID names this worker process in what it stores: its host (a
// container's ID) and pid.
func writerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// dialTemporal waits for the Temporal server.
func dialTemporal(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	return waitFor(ctx, logger, "Temporal", func(ctx context.Context) (client.Client, error) {
		return temporalx.DialAndRegister(ctx, logger)
	}, temporalx.IsPermanent)
}
