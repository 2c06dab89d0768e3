package activities_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The activities are adapters: they reach the training runtime (slots,
// resident models, device accounting, the trainer, libtorch, data sets)
// only through package engine, and import at most 8 of the project's
// packages. (No function is over 60 lines: TestFunctionsAreShort.)
func TestActivitiesAreAdapters(t *testing.T) {
	const mod = "github.com/resomap/resomap/"
	imports := map[string]bool{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, mod) {
				imports[strings.TrimPrefix(p, mod)] = true
			}
		}
	}
	for _, runtime := range []string{"trainer", "torch", "dataset", "internal/hoststat", "internal/iowatch"} {
		if imports[runtime] {
			t.Errorf("activities import %s: the runtime is the engine's", runtime)
		}
	}
	if len(imports) > 8 {
		var names []string
		for p := range imports {
			names = append(names, p)
		}
		slices.Sort(names)
		t.Errorf("activities import %d of the project's packages, want at most 8: %v", len(imports), names)
	}
}
