// Package results holds what a sweep produced: one record per completed
// training config (keyed by its hash, written once, so two workers can never
// both claim it) and one outcome per combination of each sweep.
package results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/resomap/resomap/checkpoint"
	"github.com/resomap/resomap/store"
)

// Status of a combination in a sweep.
type Status string

const (
	Pending   Status = "pending"
	Running   Status = "running"
	Paused    Status = "paused"
	Completed Status = "completed"
	Failed    Status = "failed"
	Skipped   Status = "skipped" // already completed, by this or an earlier sweep
	Cancelled Status = "cancelled"
)

// Done reports whether a status is final.
func (s Status) Done() bool {
	return s == Completed || s == Failed || s == Skipped || s == Cancelled
}

// Keys point at a combination's stored checkpoints (record keys).
type Keys struct {
	Best   string `json:"best,omitempty"`
	Final  string `json:"final,omitempty"`
	Latest string `json:"latest,omitempty"`
}

// Resume records one time training continued from a checkpoint.
type Resume struct {
	Epoch   int    `json:"epoch"` // 1-based epoch that continued
	Step    int    `json:"step"`  // steps of it already done
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
}

// Outcome is everything known about one combination of a sweep; the
// workflows keep it as state and the report reads it.
type Outcome struct {
	Model        string                    `json:"model"`
	Family       string                    `json:"family"`
	Resolution   int                       `json:"resolution"`
	Status       Status                    `json:"status"`
	Reason       string                    `json:"reason,omitempty"`
	ConfigHash   string                    `json:"config_hash,omitempty"`
	Epochs       int                       `json:"epochs"`
	EpochsDone   int                       `json:"epochs_done"`
	Step         int                       `json:"step,omitempty"`
	Metrics      []checkpoint.EpochMetrics `json:"metrics,omitempty"`
	BestEpoch    int                       `json:"best_epoch,omitempty"`
	BestValLoss  float64                   `json:"best_val_loss,omitempty"`
	BestValAcc   float64                   `json:"best_val_acc,omitempty"`
	EarlyStopped bool                      `json:"early_stopped,omitempty"`
	MicroBatch   int                       `json:"micro_batch,omitempty"`
	OOMs         int                       `json:"ooms,omitempty"`
	Resumes      []Resume                  `json:"resumes,omitempty"`
	Keys         Keys                      `json:"keys"`
	ResultKey    string                    `json:"result_key,omitempty"` // results index entry
	Device       string                    `json:"device,omitempty"`
	TrainSeconds float64                   `json:"train_seconds,omitempty"`
	EvalSeconds  float64                   `json:"eval_seconds,omitempty"`
	CkptSeconds  float64                   `json:"checkpoint_seconds,omitempty"`
	EpochSeconds float64                   `json:"epoch_activity_seconds,omitempty"` // TrainEpoch activities, wall
	OtherSeconds float64                   `json:"other_seconds,omitempty"`          // checkpoint I/O, validation, set-up
	WallSeconds  float64                   `json:"wall_seconds,omitempty"`
	SkippedFrom  string                    `json:"skipped_from,omitempty"` // sweep that trained it
	FinishedAt   time.Time                 `json:"finished_at,omitzero"`
}

// ID is model@resolution.
func (o Outcome) ID() string { return fmt.Sprintf("%s@%d", o.Model, o.Resolution) }

// ImagesPerSec is the mean training throughput over the epochs run.
func (o Outcome) ImagesPerSec() float64 {
	var s float64
	for _, m := range o.Metrics {
		s += m.ImagesPS
	}
	if len(o.Metrics) == 0 {
		return 0
	}
	return s / float64(len(o.Metrics))
}

// Index stores results and sweep outcomes in a store.
type Index struct {
	Store store.Store
}

// ErrAlreadyRecorded: another worker recorded this config's result first.
var ErrAlreadyRecorded = errors.New("result already recorded")

// ResultKey is where the result of a training config lives.
func ResultKey(configHash string) string { return path.Join("results", configHash+".json") }

// RunsDir holds every training config's checkpoints.
const RunsDir = "runs"

// RunsPrefix is where a training config's checkpoints live: checkpoints of
// the same config are shared by every sweep, so work is never repeated.
func RunsPrefix(configHash string) string { return path.Join(RunsDir, configHash[:16]) }

// Record writes the result of a completed config once. A second writer gets
// ErrAlreadyRecorded.
func (x Index) Record(ctx context.Context, sweepName string, o Outcome) (string, error) {
	rec := struct {
		Sweep string `json:"sweep"`
		Outcome
	}{sweepName, o}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	key := ResultKey(o.ConfigHash)
	if err := x.Store.PutIfAbsent(ctx, key, b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return key, fmt.Errorf("%s (%s): %w", o.ID(), key, ErrAlreadyRecorded)
		}
		return "", err
	}
	return key, nil
}

// Lookup returns the result of a config, or nil if it has none.
func (x Index) Lookup(ctx context.Context, configHash string) (*Outcome, string, error) {
	b, err := store.ReadAll(ctx, x.Store, ResultKey(configHash))
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var rec struct {
		Sweep string `json:"sweep"`
		Outcome
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, "", fmt.Errorf("result %s: %w", ResultKey(configHash), err)
	}
	return &rec.Outcome, rec.Sweep, nil
}

func outcomeKey(sweepName, id string) string {
	return path.Join("sweeps", sweepName, "outcomes", id+".json")
}

// SpecKey is where a sweep's spec is kept for the report.
func SpecKey(sweepName string) string { return path.Join("sweeps", sweepName, "spec.json") }

// PutOutcome stores the latest outcome of a combination of a sweep.
func (x Index) PutOutcome(ctx context.Context, sweepName string, o Outcome) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return x.Store.Put(ctx, outcomeKey(sweepName, o.ID()), bytes.NewReader(b))
}

// Outcomes lists the stored outcomes of a sweep, by combination ID.
func (x Index) Outcomes(ctx context.Context, sweepName string) (map[string]Outcome, error) {
	infos, err := x.Store.List(ctx, path.Join("sweeps", sweepName, "outcomes")+"/")
	if err != nil {
		return nil, err
	}
	out := map[string]Outcome{}
	for _, in := range infos {
		if !strings.HasSuffix(in.Key, ".json") {
			continue
		}
		b, err := store.ReadAll(ctx, x.Store, in.Key)
		if err != nil {
			return nil, err
		}
		var o Outcome
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("outcome %s: %w", in.Key, err)
		}
		out[o.ID()] = o
	}
	return out, nil
}
