package results

import (
	"strings"
	"testing"
)

// Every key the layout builds parses back to what built it, and no other
// kind of key parses as it: a listing read back never mistakes a
// test-resolution result for a result, nor a nested object for an outcome.
func TestLayoutKeysParseBackAndOnlyThemselves(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	if k := ResultKey(hash); k != "results/"+hash+".json" {
		t.Fatalf("ResultKey = %s (the layout of every stored result)", k)
	}
	if h, ok := ParseResultKey(ResultKey(hash)); !ok || h != hash {
		t.Errorf("ParseResultKey(ResultKey) = %q, %v", h, ok)
	}
	for _, k := range []string{TestResultKey(hash, 224), "results/.json", "results/x.txt", "other/" + hash + ".json", "results/a/b.json"} {
		if h, ok := ParseResultKey(k); ok {
			t.Errorf("ParseResultKey(%s) = %q: not a result", k, h)
		}
	}
	if id, ok := parseOutcomeKey("s", outcomeKey("s", "resnet18@32-seed2")); !ok || id != "resnet18@32-seed2" {
		t.Errorf("parseOutcomeKey(outcomeKey) = %q, %v", id, ok)
	}
	for _, k := range []string{outcomeKey("other", "m@1"), OutcomesPrefix("s") + "nested/m@1.json", OutcomesPrefix("s") + "m@1.tmp", SpecKey("s")} {
		if id, ok := parseOutcomeKey("s", k); ok {
			t.Errorf("parseOutcomeKey(%s) = %q: not an outcome of s", k, id)
		}
	}
	for _, g := range []int{1, 7, 1234567890} {
		if got, ok := parseGenerationKey(hash, generationKey(hash, g)); !ok || got != g {
			t.Errorf("parseGenerationKey(generationKey(%d)) = %d, %v", g, got, ok)
		}
	}
	for _, k := range []string{generationKey(hash, 0), generationKey("other", 3), claimDir(hash) + "/3.json", claimDir(hash) + "/x.json"} {
		if g, ok := parseGenerationKey(hash, k); ok {
			t.Errorf("parseGenerationKey(%s) = %d: not a later generation of %s", k, g, hash[:8])
		}
	}
	if RunsPrefix(hash) != "runs/"+hash[:16] || SpecKey("s") != "sweeps/s/spec.json" || DataKey("d") != "data/d.json" {
		t.Errorf("the layout moved: %s %s %s", RunsPrefix(hash), SpecKey("s"), DataKey("d"))
	}
}
