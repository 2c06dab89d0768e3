package torch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resomap/resomap/torch"
)

// The numerics fingerprint names the BLAS libtorch runs on (Debian's
// libtorch multiplies through the libblas.so.3 alternative: the reference
// BLAS, or OpenBLAS, which picks a kernel per CPU or as OPENBLAS_CORETYPE
// says) and the vector ISA.
func TestLibNamesItsBLASKernel(t *testing.T) {
	lib, err := torch.Open("")
	if err != nil {
		t.Fatal(err)
	}
	blas := lib.BLAS()
	real, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libblas.so.3")
	if err != nil {
		t.Fatalf("Debian's libtorch needs libblas.so.3: %v", err)
	}
	switch {
	case strings.Contains(real, "openblas"):
		if !strings.HasPrefix(blas, "OpenBLAS ") || len(blas) <= len("OpenBLAS ") {
			t.Errorf("BLAS() = %q, want OpenBLAS and its kernel (libblas.so.3 is %s)", blas, real)
		}
		if want := os.Getenv("OPENBLAS_CORETYPE"); want != "" && !strings.EqualFold(strings.TrimPrefix(blas, "OpenBLAS "), want) {
			t.Errorf("BLAS() = %q with OPENBLAS_CORETYPE=%s", blas, want)
		}
	case blas != "BLAS "+real:
		t.Errorf("BLAS() = %q, want the library libblas.so.3 names, %s", blas, real)
	}
	switch l := torch.CPULevel(); l {
	case "avx512", "avx2", "default":
	default:
		t.Errorf("CPULevel() = %q", l)
	}
	t.Setenv("ATEN_CPU_CAPABILITY", "avx2")
	if l := torch.CPULevel(); l != "avx2" {
		t.Errorf("with ATEN_CPU_CAPABILITY=avx2: CPULevel() = %q", l)
	}
}
