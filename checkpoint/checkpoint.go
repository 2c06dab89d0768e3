// Package checkpoint defines what a training checkpoint is: the model's
// tensors (torchvision state_dict keys, safetensors), the optimiser's state
// (a second safetensors file) and a JSON record that says where training
// stands and carries the SHA-256 of both tensor files. A checkpoint whose
// bytes do not match its record is refused, never loaded.
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/sweep"
)

// Format identifies the record layout; bump on incompatible changes.
const Format = "resomap-checkpoint/1"

// ErrCorrupt marks a checkpoint whose data does not match its record.
var ErrCorrupt = errors.New("corrupt checkpoint")

// ErrForeign marks a checkpoint that belongs to another training config.
var ErrForeign = errkind.New(errkind.Invalid, "checkpoint does not belong to this training")

// Kind says why a checkpoint was written.
type Kind string

const (
	KindMid   Kind = "mid"   // inside an epoch, for resume
	KindEpoch Kind = "epoch" // after an epoch and its validation
)

// Partial accumulates the running epoch's training figures, so that a
// resumed epoch reports exactly what an uninterrupted one would.
type Partial struct {
	LossSum float64 `json:"loss_sum"`
	Correct int64   `json:"correct"`
	Seen    int64   `json:"seen"`
	Seconds float64 `json:"seconds"`
}

// FileSum is the size and SHA-256 of one stored file.
type FileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Name is the file's name in the combination's folder; empty in
	// records written before tensor files were named by their content.
	Name string `json:"name,omitempty"`
}

// Seeds are every seed a run uses; all derive from Sweep.
type Seeds struct {
	Sweep uint64 `json:"sweep"`
	Init  uint64 `json:"init"`
}

// Versions of what produced the checkpoint.
type Versions struct {
	ResoMap string `json:"resomap"`
	Torch   string `json:"torch"`
	ABI     int    `json:"abi"`
	Go      string `json:"go"`
}

// Record is the JSON half of a checkpoint.
type Record struct {
	Format     string `json:"format"`
	Kind       Kind   `json:"kind"`
	Model      string `json:"model"`
	Family     string `json:"family"`
	Resolution int    `json:"resolution"`
	sweep.Progress
	StepInEpoch   int             `json:"step_in_epoch"` // completed steps of epoch EpochsDone+1
	StepsPerEpoch int             `json:"steps_per_epoch"`
	Epochs        int             `json:"epochs"` // planned
	SamplesSeen   int64           `json:"samples_seen"`
	MicroBatch    int             `json:"micro_batch"`
	Seeds         Seeds           `json:"seeds"`
	Partial       Partial         `json:"partial"`
	IsBest        bool            `json:"is_best"`  // this epoch improved val loss
	IsFinal       bool            `json:"is_final"` // training finished
	ConfigHash    string          `json:"config_hash"`
	Config        json.RawMessage `json:"config"`
	Device        string          `json:"device"`
	Precision     string          `json:"precision,omitempty"` // "fp32" or "bf16-autocast"
	ChannelsLast  bool            `json:"channels_last,omitempty"`
	Versions      Versions        `json:"versions"`
	// Numerics are the fingerprints (sweep.Numerics.String) of the
	// arithmetic every step so far ran under, in the order first met: a
	// training resumed on an unlike worker lists both.
	Numerics  []string        `json:"numerics,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ModelFile FileSum         `json:"model_file"`
	OptimFile FileSum         `json:"optim_file"`
	Data      *sweep.DataInfo `json:"data,omitempty"` // what it was trained on
}

// Checkpoint is a record with its two tensor files.
type Checkpoint struct {
	Record Record
	Model  []byte // safetensors, torchvision keys: load_state_dict(strict=True)
	Optim  []byte // safetensors, optimiser state
	// FilesStored: the tensor files are in the store already (SaveFiles),
	// so Save only commits the record.
	FilesStored bool
	// Key is the record key it was loaded from ("" for one not loaded).
	Key string `json:"-"`
}

// TensorBytes is the size of the tensor files it holds in memory.
func (c *Checkpoint) TensorBytes() int64 {
	if c == nil {
		return 0
	}
	return int64(len(c.Model) + len(c.Optim))
}

func sum(b []byte) FileSum {
	h := sha256.Sum256(b)
	return FileSum{Size: int64(len(b)), SHA256: hex.EncodeToString(h[:])}
}

// Seal stamps the record with the sizes and checksums of the tensor files.
func (c *Checkpoint) Seal() {
	c.Record.Format = Format
	c.Record.ModelFile = sum(c.Model)
	c.Record.OptimFile = sum(c.Optim)
}

// Verify checks both tensor files against the record.
func (c *Checkpoint) Verify() error {
	if c.Record.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrCorrupt, c.Record.Format, Format)
	}
	for _, f := range []struct {
		name string
		data []byte
		want FileSum
	}{{"model", c.Model, c.Record.ModelFile}, {"optimizer", c.Optim, c.Record.OptimFile}} {
		got := sum(f.data)
		if got.Size != f.want.Size {
			return fmt.Errorf("%w: %s tensors are %d bytes, record says %d (truncated?)", ErrCorrupt, f.name, got.Size, f.want.Size)
		}
		if got.SHA256 != f.want.SHA256 {
			return fmt.Errorf("%w: %s tensors SHA-256 %s, record says %s", ErrCorrupt, f.name, got.SHA256, f.want.SHA256)
		}
	}
	return nil
}

// MarshalRecord encodes the record as indented JSON.
func (r Record) Marshal() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// UnmarshalRecord decodes a record, refusing anything that is not one.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("%w: record: %v", ErrCorrupt, err)
	}
	if r.Format != Format {
		return Record{}, fmt.Errorf("%w: record format %q, want %q", ErrCorrupt, r.Format, Format)
	}
	return r, nil
}

// After reports whether r is further along than o.
func (r Record) After(o Record) bool {
	if r.EpochsDone != o.EpochsDone {
		return r.EpochsDone > o.EpochsDone
	}
	return r.StepInEpoch > o.StepInEpoch
}
