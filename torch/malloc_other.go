//go:build !linux

package torch

func keepStepMemory()     {}
func releaseFreedMemory() {}
