package resomap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// scripts/gpu-check.sh on a machine without a GPU says so in one line and
// runs nothing (it is the one thing to run on a GPU machine).
func TestGPUCheckSaysWhenThereIsNoGPU(t *testing.T) {
	bin := t.TempDir() // a PATH with the script's tools and no nvidia-smi
	for _, tool := range []string{"dirname"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("/bin/bash", "scripts/gpu-check.sh")
	cmd.Env = []string{"PATH=" + bin, "OUT=" + out}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gpu-check without a GPU: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "no NVIDIA GPU") {
		t.Fatalf("want one line saying there is no GPU, got:\n%s", b)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("it wrote %d files without a GPU", len(entries))
	}
}
