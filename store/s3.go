package store

import (
	"context"
	"fmt"
	"net/url"
)

// NewS3 is filled in by the S3 backend.
func NewS3(ctx context.Context, u *url.URL) (Store, error) {
	return nil, fmt.Errorf("store %s: S3 backend not built yet", u.Redacted())
}
