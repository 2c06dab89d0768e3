package sweep

import (
	"fmt"
	"slices"
	"strings"
)

// Numerics is what decides an epoch's floating point besides its config:
// the same config trained under two fingerprints may end with other
// weights (another OpenBLAS kernel gave other accuracies in every cell of
// one sweep). It is recorded per epoch, not hashed: it says how a result
// was computed, not what was asked.
type Numerics struct {
	Torch   string // libtorch version
	Device  string // cpu, cuda:0, ...
	BLAS    string // the BLAS kernel (CPU)
	CPU     string // the widest vector ISA ATen's kernels dispatch to (CPU)
	Threads int    // intra-op threads (CPU: reductions split by them)
	// Precision: "bf16" when autocast runs, "" for fp32; ChannelsLast is
	// the GPU's memory format.
	Precision    string
	ChannelsLast bool
}

// String is the fingerprint as records and reports carry it, e.g.
// "libtorch 1.13.1, cpu, OpenBLAS Zen, avx512, 2 threads".
func (n Numerics) String() string {
	parts := []string{"libtorch " + n.Torch, n.Device}
	if n.Device == "cpu" || n.Device == "" {
		threads := fmt.Sprintf("%d threads", n.Threads)
		if n.Threads == 1 {
			threads = "1 thread"
		}
		parts = append(parts, n.BLAS, n.CPU, threads)
	}
	if n.Precision != "" {
		parts = append(parts, n.Precision)
	}
	if n.ChannelsLast {
		parts = append(parts, "channels-last")
	}
	return strings.Join(parts, ", ")
}

// UnionNumerics is a's fingerprints, then those of b not in a.
func UnionNumerics(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// AddNumerics notes that steps of the training ran under fingerprints ns
// (none: an epoch of a worker before fingerprints).
func (o *Outcome) AddNumerics(ns []string) { o.Numerics = UnionNumerics(o.Numerics, ns) }

// MixedNumerics says the training's epochs ran under more than one
// fingerprint: its figures are not those of one machine's arithmetic
// (the training moved between unlike workers).
func (o Outcome) MixedNumerics() bool { return len(o.Numerics) > 1 }
