package tracking_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/resomap/resomap/tracking"
	"github.com/resomap/resomap/tracking/mlflowtest"
)

// LogBatch splits what it logs so that no request breaks MLflow's limits
// (1,000 metrics, 100 params, 100 tags, 1,000 entries in all, 1 MB as
// sent, JSON escapes included; the test server refuses any that does, as
// the real one), and everything arrives.
func TestLogBatchKeepsWithinMLflowsLimits(t *testing.T) {
	s := mlflowtest.New()
	defer s.Close()
	c := client(t, s, tracking.Credentials{})
	ctx := context.Background()
	exp, err := c.Experiment(ctx, "limits")
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, exp, "r", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var metrics []tracking.Metric
	for i := range 2500 {
		metrics = append(metrics, tracking.Metric{Key: fmt.Sprintf("m%d", i%7), Value: float64(i), Timestamp: int64(i + 1), Step: int64(i)})
	}
	var params, tags []tracking.Tag
	for i := range 250 {
		params = append(params, tracking.Tag{Key: fmt.Sprintf("p%03d", i), Value: strings.Repeat("<&", 2500)}) // 30 KB as JSON
		tags = append(tags, tracking.Tag{Key: fmt.Sprintf("t%03d", i), Value: strings.Repeat("w", 4000)})
	}
	if err := c.LogBatch(ctx, run.Info.RunID, metrics, params, tags); err != nil {
		t.Fatalf("LogBatch of 2,500 metrics, 250 params of 5 KB, 250 tags of 4 KB: %v", err)
	}
	var got *mlflowtest.RunView
	for _, r := range s.Runs() {
		if r.ID == run.Info.RunID {
			got = &r
		}
	}
	if got == nil {
		t.Fatal("the run is gone")
	}
	points := 0
	for _, ps := range got.Metrics {
		points += len(ps)
	}
	if points != len(metrics) || len(got.Params) != len(params) || len(got.Tags) < len(tags) {
		t.Fatalf("logged %d points, %d params, %d tags; want all", points, len(got.Params), len(got.Tags))
	}
	t.Logf("%d log-batch calls", s.Calls("runs/log-batch"))
}
