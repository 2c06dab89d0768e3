package checkpoint

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The layout of checkpoints in a store. Every key is built and parsed in
// this file, nowhere else:
//
//	<prefix>/{family}/{model}/{resolution}/               a combination (Combo)
//	  epoch_NNNN.json, mid_eNNNN_sNNNNNN.json             records (Ref.Key)
//	  <name>.<sha256[:16]>.safetensors                    model tensors, named by content
//	  <name>.<sha256[:16]>.optim.safetensors              optimiser tensors
//	  best_model.{json,safetensors,optim.safetensors}     exported copies, plain names
//	  final_model.{json,safetensors,optim.safetensors}
//
// A mid-epoch name carries the 1-based epoch in progress; an epoch name the
// epochs done.

// Combo is one combination's folder.
type Combo struct {
	Prefix     string // e.g. "runs/<config-namespace>"; may be empty
	Family     string
	Model      string
	Resolution int
}

// Dir is the combination's key prefix (no trailing slash).
func (c Combo) Dir() string {
	return path.Join(c.Prefix, c.Family, c.Model, strconv.Itoa(c.Resolution))
}

// NameKind says which of a combination's checkpoints a name is.
type NameKind int

const (
	NameEpoch NameKind = iota + 1 // after an epoch: resumable
	NameMid                       // inside an epoch: resumable
	NameBest                      // exported copy of the best epoch
	NameFinal                     // exported copy of the last epoch
)

// Name is which checkpoint of a combination's folder.
type Name struct {
	Kind       NameKind
	EpochsDone int // NameEpoch, NameMid
	Step       int // NameMid: steps done in epoch EpochsDone+1
}

// EpochName names the checkpoint written after epoch n.
func EpochName(n int) Name { return Name{Kind: NameEpoch, EpochsDone: n} }

// MidName names the checkpoint written after step of epoch epochsDone+1.
func MidName(epochsDone, step int) Name {
	return Name{Kind: NameMid, EpochsDone: epochsDone, Step: step}
}

// The names of the exported copies.
var (
	BestName  = Name{Kind: NameBest}
	FinalName = Name{Kind: NameFinal}
)

func (n Name) String() string {
	switch n.Kind {
	case NameEpoch:
		return fmt.Sprintf("epoch_%04d", n.EpochsDone)
	case NameMid:
		return fmt.Sprintf("mid_e%04d_s%06d", n.EpochsDone+1, n.Step)
	case NameBest:
		return "best_model"
	case NameFinal:
		return "final_model"
	}
	return fmt.Sprintf("invalid-name-%d", n.Kind)
}

// Resumable: training can continue from this checkpoint (the exported
// copies are never resumed from: they duplicate an epoch checkpoint).
func (n Name) Resumable() bool { return n.Kind == NameEpoch || n.Kind == NameMid }

// After reports whether n is further along in training than o.
func (n Name) After(o Name) bool {
	if n.EpochsDone != o.EpochsDone {
		return n.EpochsDone > o.EpochsDone
	}
	return n.Step > o.Step
}

// parseName reads a base name; ok is false for anything else.
func parseName(s string) (n Name, ok bool) {
	switch {
	case s == "best_model":
		return BestName, true
	case s == "final_model":
		return FinalName, true
	case strings.HasPrefix(s, "epoch_"):
		e, err := strconv.Atoi(strings.TrimPrefix(s, "epoch_"))
		return EpochName(e), err == nil && e >= 0 && EpochName(e).String() == s
	case strings.HasPrefix(s, "mid_e"):
		es, ss, found := strings.Cut(strings.TrimPrefix(s, "mid_e"), "_s")
		e, err1 := strconv.Atoi(es)
		st, err2 := strconv.Atoi(ss)
		n := MidName(e-1, st)
		return n, found && err1 == nil && err2 == nil && e >= 1 && st >= 0 && n.String() == s
	}
	return Name{}, false
}

// Name is the name a record is committed under: epoch_NNNN after an epoch,
// mid_eNNNN_sNNNNNN inside one.
func (r Record) Name() Name {
	if r.Kind == KindMid {
		return MidName(r.EpochsDone, r.StepInEpoch)
	}
	return EpochName(r.EpochsDone)
}

// Ref is one checkpoint in a store: a combination's folder and a name.
type Ref struct {
	Combo
	Name Name
}

// base is the key of the checkpoint's files without their suffixes.
func (r Ref) base() string { return path.Join(r.Dir(), r.Name.String()) }

// Key is the key of the checkpoint's record, which names the checkpoint.
func (r Ref) Key() string { return r.base() + ".json" }

// plainFiles are the keys of the tensor files of an exported copy (and of
// checkpoints written before files were named by content).
func (r Ref) plainFiles() (model, optim string) {
	return r.base() + ".safetensors", r.base() + ".optim.safetensors"
}

// contentFile is the key of a tensor file named by its content.
func (r Ref) contentFile(f FileSum, optim bool) string {
	suffix := ".safetensors"
	if optim {
		suffix = ".optim.safetensors"
	}
	return r.base() + "." + f.SHA256[:16] + suffix
}

// withContentNames fills in the names of rec's tensor files when stored
// under r.
func (r Ref) withContentNames(rec Record) Record {
	rec.ModelFile.Name = path.Base(r.contentFile(rec.ModelFile, false))
	rec.OptimFile.Name = path.Base(r.contentFile(rec.OptimFile, true))
	return rec
}

// tensorFiles are the keys of the tensor files rec (stored under r) points
// at: its content names, or the plain ones when it names none.
func (r Ref) tensorFiles(rec Record) (model, optim string) {
	model, optim = r.plainFiles()
	if rec.ModelFile.Name != "" {
		model = path.Join(r.Dir(), rec.ModelFile.Name)
	}
	if rec.OptimFile.Name != "" {
		optim = path.Join(r.Dir(), rec.OptimFile.Name)
	}
	return model, optim
}

// ParseKey reads a record key; ok is false for anything else (tensor
// files, the latest.json pointers of older versions, unknown names).
func ParseKey(key string) (r Ref, ok bool) {
	base, isJSON := strings.CutSuffix(key, ".json")
	parts := strings.Split(base, "/")
	n := len(parts)
	if !isJSON || n < 4 {
		return Ref{}, false
	}
	name, ok := parseName(parts[n-1])
	if !ok {
		return Ref{}, false
	}
	res, err := strconv.Atoi(parts[n-2])
	if err != nil {
		return Ref{}, false
	}
	c := Combo{Prefix: path.Join(parts[:n-4]...), Family: parts[n-4], Model: parts[n-3], Resolution: res}
	r = Ref{Combo: c, Name: name}
	return r, r.Key() == key
}

// parseTensorKey reads the key of a content-named tensor file
// (<name>.<sha256[:16]>[.optim].safetensors): the checkpoint it belongs to.
func parseTensorKey(key string) (Ref, bool) {
	base, ok := strings.CutSuffix(key, ".safetensors")
	if !ok {
		return Ref{}, false
	}
	base = strings.TrimSuffix(base, ".optim")
	dot := strings.LastIndexByte(base, '.')
	if dot < 0 || len(base)-dot-1 != 16 {
		return Ref{}, false
	}
	return ParseKey(base[:dot] + ".json")
}
