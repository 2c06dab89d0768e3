package sweepclient

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/workflows"
)

// An add that met a finished sweep is told by the error's type (or the
// server's NotFound for a sweep closed meanwhile), not by its words; other
// refusals are not taken for it, whatever they say.
func TestFinishedMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{temporal.NewNonRetryableApplicationError("sweep x is over", workflows.ErrTypeSweepFinished, nil), true},
		{fmt.Errorf("update: %w", temporal.NewNonRetryableApplicationError("any words", workflows.ErrTypeSweepFinished, nil)), true},
		{serviceerror.NewNotFound("workflow execution already completed"), true},
		{errors.New("sweep x has finished: start it again with the added combinations (starter add does)"), true}, // a worker before the type
		{temporal.NewApplicationError("invalid sweep spec: resolutions: 4, which has finished", workflows.ErrTypeInvalidInput), false},
		{errors.New("sweep x is cancelled: nothing can be added"), false},
	} {
		if got := FinishedMeanwhile(tc.err); got != tc.want {
			t.Errorf("%v: finished meanwhile %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A query refused at once for want of pollers is no worker answering.
func TestNoRecentPoller(t *testing.T) {
	if !noRecentPoller(serviceerror.NewFailedPrecondition("no poller seen for task queue recently, worker may be down")) {
		t.Error("a query refused for want of pollers is no worker answering")
	}
	if noRecentPoller(serviceerror.NewInvalidArgument("bad")) {
		t.Error("an invalid argument taken for no pollers")
	}
}
