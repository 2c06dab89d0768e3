package results

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The store's layout outside a combination's checkpoints (which
// checkpoint/layout.go owns): every key the results index, the claims and
// the sweeps' records use is built here, and parsed here where a listing
// is read back.
//
//	results/<config hash>.json                           a training's result, written once
//	results/test-resolutions/<config hash>/<res>.json    its figures at a test resolution
//	runs/<config hash[:16]>/...                          its checkpoints (checkpoint.Repo's prefix)
//	claims/<config hash>.json, claims/<hash>/<gen>.json  who trains it now, by generation
//	sweeps/<name>/spec.json                              a sweep's spec, for its report
//	sweeps/<name>/outcomes/<training ID>.json            a sweep's outcome of each training
//	data/<data hash>.json                                a data set's identity (file digests)
//	probes/...                                           the store's own capability probes (store.go)
const (
	resultsDir = "results"
	// RunsDir holds every training config's checkpoints.
	RunsDir   = "runs"
	claimsDir = "claims"
	sweepsDir = "sweeps"
	dataDir   = "data"
)

// ResultKey is where the result of a training config lives.
func ResultKey(configHash string) string { return path.Join(resultsDir, configHash+".json") }

// ParseResultKey is the config hash a result's key names (false for any
// other key, test-resolution results included).
func ParseResultKey(key string) (configHash string, ok bool) {
	dir, file := path.Split(key)
	hash, isJSON := strings.CutSuffix(file, ".json")
	return hash, dir == resultsDir+"/" && isJSON && hash != "" && ResultKey(hash) == key
}

// RunsPrefix is where a training config's checkpoints live: checkpoints of
// the same config are shared by every sweep, so work is never repeated.
func RunsPrefix(configHash string) string { return path.Join(RunsDir, configHash[:16]) }

// TestResultKey names a training's figures at a test resolution: its best
// checkpoint, which a config hash names once the training is complete.
func TestResultKey(configHash string, res int) string {
	return path.Join(resultsDir, "test-resolutions", configHash, fmt.Sprintf("%d.json", res))
}

// OutcomesPrefix is where a sweep's outcomes are, one a combination.
func OutcomesPrefix(sweepName string) string {
	return path.Join(sweepsDir, sweepName, "outcomes") + "/"
}

func outcomeKey(sweepName, id string) string {
	return path.Join(OutcomesPrefix(sweepName), id+".json")
}

// parseOutcomeKey is the training ID an outcome's key names.
func parseOutcomeKey(sweepName, key string) (id string, ok bool) {
	rest, inSweep := strings.CutPrefix(key, OutcomesPrefix(sweepName))
	id, isJSON := strings.CutSuffix(rest, ".json")
	return id, inSweep && isJSON && id != "" && !strings.Contains(id, "/")
}

// SpecKey is where a sweep's spec is kept for the report.
func SpecKey(sweepName string) string { return path.Join(sweepsDir, sweepName, "spec.json") }

// DataKey is where the identity (file digests) of a data set a sweep
// prepared is kept, so a worker with another copy can name what differs.
func DataKey(dataHash string) string { return path.Join(dataDir, dataHash+".json") }

func claimDir(configHash string) string { return path.Join(claimsDir, configHash) }

// generationKey is where generation gen of a config's claim is kept
// (generation 0 beside the folder, as the first claims were written).
func generationKey(configHash string, gen int) string {
	if gen == 0 {
		return path.Join(claimsDir, configHash+".json")
	}
	return path.Join(claimDir(configHash), fmt.Sprintf("%010d.json", gen))
}

// parseGenerationKey is the generation a key in a config's claim folder
// names.
func parseGenerationKey(configHash, key string) (gen int, ok bool) {
	rest, inDir := strings.CutPrefix(key, claimDir(configHash)+"/")
	digits, isJSON := strings.CutSuffix(rest, ".json")
	g, err := strconv.Atoi(digits)
	return g, inDir && isJSON && err == nil && g > 0 && generationKey(configHash, g) == key
}
