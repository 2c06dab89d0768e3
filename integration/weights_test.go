package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resomap/resomap/sweep"
	"github.com/resomap/resomap/workflows"
)

// A weights server that sends its headers and then stalls: Prepare's
// attempt is given up within the heartbeat rules (3 s here) with the
// reason, retried, and `starter pause` stops the download (the server sees
// its request end) and pauses the combination; a cancel then ends it.
func TestStalledWeightsDownloadIsGivenUpAndPaused(t *testing.T) {
	var requests, open atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		open.Add(1)
		defer open.Add(-1)
		w.Header().Set("Content-Length", "100000000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("PK"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	store, tq := t.TempDir(), "tq-weightsstall"
	startWorker(t, tq, store)
	spec := writeSpec(t, specYAML("weightsstall", "32", 320)+fmt.Sprintf("init: {weights: %q}\n", srv.URL+"/w/model.pth"))
	if out, err := starter(t, tq, store, "--sweep", spec); err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	c := dial(t)
	ctx := context.Background()
	id, child := "sweep-weightsstall", "sweep-weightsstall/smallcnn@32"
	var reason string
	waitFor(t, "the stalled download's attempt to be given up and retried", 2*time.Minute, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, child, "")
		if err != nil {
			return false
		}
		for _, pa := range d.PendingActivities {
			if pa.ActivityType.GetName() == workflows.ActivityPrepare && pa.Attempt >= 2 && pa.LastFailure != nil {
				reason = pa.LastFailure.GetMessage()
				return true
			}
		}
		return false
	})
	if !strings.Contains(reason, "no progress for") || !strings.Contains(reason, "download") {
		t.Fatalf("the given-up attempt's reason: %q; want the stall named", reason)
	}
	t.Logf("attempt given up: %s", reason)
	waitFor(t, "the retry to be downloading", time.Minute, func() bool { return open.Load() > 0 })
	if out, err := starter(t, tq, store, "pause", "--id", id); err != nil {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	waitFor(t, "the download stopped and the combination paused", time.Minute, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, child, "")
		return err == nil && len(d.PendingActivities) == 0 && open.Load() == 0 && outcomeOf(t, c, child).Status == sweep.Paused
	})
	n := requests.Load()
	if out, err := starter(t, tq, store, "cancel", "--id", id); err != nil {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	p := result(t, c, id, 2*time.Minute)
	if o := p.Combos[0]; o.Status != sweep.Cancelled || requests.Load() != n {
		t.Fatalf("after cancel: %s (%s), %d requests then %d", o.Status, o.Reason, n, requests.Load())
	}
}
