package main

import (
	"bytes"
	"strings"
	"testing"

	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/resomap/resomap/sweep"
)

// An epoch that keeps failing and being retried (a full disk under the
// store) shows its attempt and last failure in `starter status`.
func TestStatusShowsRetriedEpochs(t *testing.T) {
	failing := &workflowpb.PendingActivityInfo{Attempt: 4,
		LastFailure: &failurepb.Failure{Message: "store checkpoint: write epoch_0002.safetensors: no space left on device"}}
	note := retryNote(failing)
	if note != "attempt 4: store checkpoint: write epoch_0002.safetensors: no space left on device" {
		t.Fatalf("retry note %q", note)
	}
	if n := retryNote(&workflowpb.PendingActivityInfo{Attempt: 1}); n != "" {
		t.Errorf("first attempt: note %q, want none", n)
	}
	var out bytes.Buffer
	o := sweep.Outcome{Identity: sweep.Identity{Model: "smallcnn", Resolution: 16}, Status: sweep.Running, Epochs: 3}
	printTable(&out, []sweep.Outcome{o}, map[string]string{o.ID(): epochState{retry: note}.note()})
	if !strings.Contains(out.String(), "retrying, attempt 4:") || !strings.Contains(out.String(), "no space left on device") {
		t.Errorf("status table does not show the retry:\n%s", out.String())
	}
	// A run that fell behind on the tracking server says so, and why.
	out.Reset()
	o.Tracking = "behind: mlflow GET experiments/get-by-name at http://mlflow:5000: connection refused"
	printTable(&out, []sweep.Outcome{o}, nil)
	if !strings.Contains(out.String(), "MLflow run behind: mlflow GET experiments/get-by-name") {
		t.Errorf("status table does not show tracking behind:\n%s", out.String())
	}
	// A training whose epochs ran on unlike workers says so.
	out.Reset()
	o.Tracking, o.Numerics = "", []string{"libtorch 1.13.1, cpu, OpenBLAS Zen, avx512, 2 threads", "libtorch 1.13.1, cpu, OpenBLAS Haswell, avx2, 1 thread"}
	printTable(&out, []sweep.Outcome{o}, nil)
	if !strings.Contains(out.String(), "epochs under 2 numerics (moved between unlike workers: libtorch 1.13.1, cpu, OpenBLAS Zen") {
		t.Errorf("status table does not flag mixed numerics:\n%s", out.String())
	}
	out.Reset()
	o.Numerics, o.ContendedEpochs, o.HostOthers = nil, 2, 0.45
	printTable(&out, []sweep.Outcome{o}, nil)
	if !strings.Contains(out.String(), "2 epochs on a shared host (others used up to 45% of its CPUs)") {
		t.Errorf("status table does not flag a shared host:\n%s", out.String())
	}
}
