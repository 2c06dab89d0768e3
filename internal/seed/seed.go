// Package seed derives every random seed of a training run from the sweep's
// seed and the coordinates of what it seeds, so that a run interrupted at any
// step and resumed reproduces the uninterrupted run exactly.
package seed

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Derive hashes base and parts (model, resolution, epoch, step, purpose …)
// into a 64-bit seed. The same inputs always give the same seed.
func Derive(base uint64, parts ...any) uint64 {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], base)
	h.Write(b[:])
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%T:%v", p, p)
	}
	return binary.LittleEndian.Uint64(h.Sum(nil))
}
