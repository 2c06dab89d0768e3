package sweep_test

import (
	"testing"

	"github.com/resomap/resomap/sweep"
)

// Compute hours are the training's own device time; its throughput is
// scaled to that time only where it shared the device (a training alone
// that left cores idle trained no faster than it measured).
func TestDeviceTimeScalesThroughputOnlyWhenShared(t *testing.T) {
	o := sweep.Outcome{Status: sweep.Completed, Timings: sweep.Timings{TrainSeconds: 9, EvalSeconds: 1, DeviceSeconds: 5}}
	o.Metrics = []sweep.EpochMetrics{{ImagesPS: 100}}
	if h := o.ComputeHours(); h != 5.0/3600 {
		t.Fatalf("compute hours %v, want the 5 device seconds", h)
	}
	if v := o.DeviceImagesPerSec(); v != 100 {
		t.Fatalf("alone: %v images/s, want the measured 100", v)
	}
	o.SharedEpochs = 1
	if v := o.DeviceImagesPerSec(); v != 200 {
		t.Fatalf("shared: %v images/s, want 100 x 10 s / 5 device s = 200", v)
	}
	o.DeviceSeconds = 0 // recorded before device time existed
	if h, v := o.ComputeHours(), o.DeviceImagesPerSec(); h != 10.0/3600 || v != 100 {
		t.Fatalf("old outcome: %v hours, %v images/s; want training + validation and the measured rate", h, v)
	}
}
