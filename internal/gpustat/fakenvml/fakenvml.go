// Package fakenvml builds a stand-in for libnvidia-ml for tests on hosts
// without a GPU: NVML's signatures in C (fake_nvml.c), compiled with the
// host's C compiler, so what loads it through purego is tested as it will
// run against the driver's library.
package fakenvml

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed fake_nvml.c
var source []byte

// Build compiles the fake into t's temporary folder and gives its path:
// two GPUs. GPU 0 reads 10, 30, 50 …% busy on successive reads, 20 of
// 80 GB used, and 350 of 700 W drawn on every other power read (the
// others fail); GPU 1, like a MIG-partitioned GPU, 40 GB used and no
// utilisation or power. FAKE_NVML_FAIL_INIT in the environment fails
// nvmlInit.
func Build(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src, lib := filepath.Join(dir, "fake_nvml.c"), filepath.Join(dir, "libfake-nvml.so")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cc", "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("compile the fake NVML (a C compiler is one of make deps' packages): %v\n%s", err, out)
	}
	return lib
}
