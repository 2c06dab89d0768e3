package torch

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"
)

// BLAS names the BLAS kernel libtorch's matrix products run on: OpenBLAS
// picks one per CPU (or as OPENBLAS_CORETYPE says), and two kernels round
// differently, so the same training on two machines may end apart.
// Another BLAS (Debian's reference one, behind the libblas.so.3
// alternative) is named by the file it was loaded from; "unknown" when
// none shows.
func (l *Lib) BLAS() string { return l.blas }

// blasKernel asks the BLAS loaded with the bridge (handle h) which kernel
// it chose (OpenBLAS's openblas_get_corename), or names its file.
func blasKernel(h uintptr) string {
	if sym, err := purego.Dlsym(h, "openblas_get_corename"); err == nil {
		var corename func() string
		purego.RegisterFunc(&corename, sym)
		if name := corename(); name != "" {
			return "OpenBLAS " + name
		}
	}
	if path := mappedBLAS(); path != "" {
		return "BLAS " + path
	}
	return "unknown"
}

// mappedBLAS is the file of the BLAS library mapped into this process (its
// real path: libblas.so.3 is an alternative that names several), "" when
// none is.
func mappedBLAS() string {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		path := f[len(f)-1]
		if base := filepath.Base(path); strings.HasPrefix(base, "libblas") || strings.HasPrefix(base, "libopenblas") || strings.HasPrefix(base, "libmkl_core") {
			if real, err := filepath.EvalSymlinks(path); err == nil {
				return real
			}
			return path
		}
	}
	return ""
}

// CPULevel is the widest vector instruction set ATen's CPU kernels can
// dispatch to on this machine (ATEN_CPU_CAPABILITY lowers it): avx512,
// avx2 or default. Kernels of two levels sum in other orders.
func CPULevel() string {
	if v := os.Getenv("ATEN_CPU_CAPABILITY"); v != "" {
		return v
	}
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ:
		return "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return "avx2"
	}
	return "default"
}
