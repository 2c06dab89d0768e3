package workflows

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflow code and the spec link neither the native binding nor the
// storage layer: workers deploy workflows and starters read specs without
// libtorch, and workflow code must not reach a store (it would be I/O in
// deterministic code). The report and the starter link no native library.
func TestPureCodeLinksNoNativeLibraryNorStore(t *testing.T) {
	const mod = "github.com/resomap/resomap/"
	// A path with a slash is a package and those below it; a word
	// matches anywhere in a module path.
	forbidden := map[string][]string{
		"workflows": {"purego", "aws-sdk-go-v2", mod + "store", mod + "torch"},
		"sweep":     {"purego", "aws-sdk-go-v2", mod + "store", mod + "torch"},
		"report":    {"purego", mod + "torch"},
		"starter":   {"purego", mod + "torch"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, b+"/") || !strings.Contains(b, "/") && strings.Contains(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
