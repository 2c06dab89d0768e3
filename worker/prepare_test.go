package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"strconv"
	"strings"
	"testing"

	"github.com/resomap/resomap/internal/testfixture"
)

// prepare-data builds each resolution's cache once, prints its figures, and
// reports a cache that is already there as cached.
func TestPrepareDataBuildsThenFindsCaches(t *testing.T) {
	data, cache := t.TempDir(), t.TempDir()
	testfixture.Photos{N: 12, W: 48, H: 36, Quality: jpeg.DefaultQuality, Name: strconv.Itoa,
		Paint: func(img *image.RGBA, i, _ int) {
			for p := range img.Pix {
				img.Pix[p] = byte(i*20 + p%7)
			}
		}}.Write(t, data)
	run := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := prepareData(args, &out, &errs)
		return out.String(), err
	}
	out, err := run("--data", data, "--resolutions", "32,48", "--data-cache", cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []string{"32 ", "48 "} {
		if !strings.Contains(out, "\n"+res) || strings.Count(out, " 12 ") < 2 {
			t.Fatalf("no %spx row with 12 images:\n%s", res, out)
		}
	}
	if strings.Contains(out, "cached") {
		t.Fatalf("first run found caches:\n%s", out)
	}
	if out, err = run("--data", data, "--resolutions", "32", "--data-cache", cache); err != nil || !strings.Contains(out, "cached") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{"--data", data, "--resolutions", "32x"}, {"--resolutions", "32"}, {"--data", data}} {
		if _, err := run(bad...); err == nil {
			t.Errorf("prepare-data %v: no error", bad)
		}
	}
}
