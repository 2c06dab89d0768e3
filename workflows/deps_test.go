package workflows

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflow code, the spec and the report never link the native binding:
// workers deploy workflows, starters read specs, neither needs libtorch.
func TestPureCodeLinksNoNativeLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/resomap/resomap/workflows",
		"github.com/resomap/resomap/sweep", "github.com/resomap/resomap/report", "github.com/resomap/resomap/starter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "purego") || dep == "github.com/resomap/resomap/torch" {
			t.Errorf("pure packages depend on %s", dep)
		}
	}
}
