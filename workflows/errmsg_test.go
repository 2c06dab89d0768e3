package workflows

import (
	"errors"
	"fmt"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// A failed activity's reason is its own message, not the SDK's chain of
// causes; a timeout says so before the failure of the attempt before it.
func TestErrorMessageSaysWhatFailed(t *testing.T) {
	inner := fmt.Errorf("w.pth: %w", errors.New("not a state dict"))
	app := temporal.NewNonRetryableApplicationError(inner.Error(), ErrTypeInvalidInput, inner)
	for _, c := range []struct {
		err  error
		want string
	}{
		{app, "w.pth: not a state dict"},
		{fmt.Errorf("activity error: %w", app), "w.pth: not a state dict"},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, temporal.NewApplicationError("disk full", "X")),
			"timed out (Heartbeat); the attempt before: disk full"},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil), "timed out (StartToClose)"},
		{fmt.Errorf("a: %w", errors.New("root cause")), "root cause"},
	} {
		if got := errorMessage(c.err); got != c.want {
			t.Errorf("errorMessage(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
