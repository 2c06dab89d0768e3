package activities

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/pretrained"
	"github.com/resomap/resomap/store"
	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/torch"
	"github.com/resomap/resomap/trainer"
	"github.com/resomap/resomap/workflows"
)

// Every package's sentinels are classified by their kind as they were by
// the list classify held before: out of memory and bad input are not
// retried (with their error types), anything else is.
func TestClassifyByKind(t *testing.T) {
	for _, tc := range []struct {
		err      error
		wantType string // "": retried as it is
	}{
		{torch.ErrOutOfMemory, workflows.ErrTypeOutOfMemory},
		{torch.ErrInvalid, workflows.ErrTypeInvalidInput},
		{dataset.ErrBadData, workflows.ErrTypeInvalidInput},
		{checkpoint.ErrForeign, workflows.ErrTypeInvalidInput},
		{sweep.ErrInvalid, workflows.ErrTypeInvalidInput},
		{trainer.ErrDiverged, workflows.ErrTypeInvalidInput},
		{trainer.ErrWeightsMismatch, workflows.ErrTypeInvalidInput},
		{pretrained.ErrFormat, workflows.ErrTypeInvalidInput},
		{pretrained.ErrMissing, workflows.ErrTypeInvalidInput},
		{pretrained.ErrRefused, workflows.ErrTypeInvalidInput},
		{pretrained.ErrChecksum, ""},
		{store.ErrNotFound, ""},
		{errors.New("connection reset by peer"), ""},
	} {
		wrapped := fmt.Errorf("epoch 2: %w", tc.err)
		got := classify(wrapped)
		var app *temporal.ApplicationError
		switch {
		case tc.wantType == "" && got != wrapped:
			t.Errorf("%v: classified %v, want it as it is", tc.err, got)
		case tc.wantType != "" && (!errors.As(got, &app) || app.Type() != tc.wantType || !app.NonRetryable()):
			t.Errorf("%v: classified %v, want a non-retryable %s", tc.err, got, tc.wantType)
		case tc.wantType != "" && !errors.Is(got, tc.err):
			t.Errorf("%v: the classified error lost its sentinel", tc.err)
		}
	}
}

// A test size a model cannot take is skipped in the model's own words.
func TestSkipReasonSaysWhyAModelCannotTakeASize(t *testing.T) {
	vit, _ := sweep.LookupModel("vit_b_16")
	cnn, _ := sweep.LookupModel("smallcnn")
	for _, tc := range []struct {
		info sweep.ModelInfo
		res  int
		want string
	}{
		{vit, 40, "resolution 40 for vit_b_16: not a multiple of its 16 px patches (try 32 or 48)"},
		{vit, 48, ""},
		{cnn, 4, "resolution 4 out of range for smallcnn (8..2048 px)"},
	} {
		if got := skipReason(tc.info, tc.res, 0, true); got != tc.want {
			t.Errorf("%s at %d px: %q, want %q", tc.info.Name, tc.res, got, tc.want)
		}
	}
}
