package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/resomap/resomap/dataset"
	"github.com/resomap/resomap/dataset/turbojpeg"
	"github.com/resomap/resomap/internal/lists"
	"github.com/resomap/resomap/internal/temporalx"
)

// prepareData is `worker prepare-data`: it builds (or verifies) the data
// caches of a data set at some resolutions on this machine ahead of a sweep,
// with no Temporal server, and prints what each took.
func prepareData(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prepare-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "image folder or IDX folder (or fashion-mnist)")
	resList := fs.String("resolutions", "", "comma-separated resolutions, e.g. 224,320")
	cacheDir := fs.String("data-cache", temporalx.EnvOr("RESOMAP_DATA_CACHE", ""), "data cache directory (default ~/.cache/resomap)")
	augment := fs.String("augment", "", "recipe: imagenet or cifar (default: imagenet for image folders, cifar for IDX)")
	skipBad := fs.Bool("skip-bad-images", false, "leave out images that do not decode (counted) instead of failing")
	workers := fs.Int("workers", 0, "decoding goroutines (0 = all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	resolutions, err := parseResolutions(*resList)
	if err != nil {
		return err
	}
	if *data == "" {
		return errors.New("--data is required")
	}
	opts := dataset.Options{CacheDir: *cacheDir, Augment: *augment, SkipBadImages: *skipBad, Workers: *workers}
	if dec, err := turbojpeg.Open(); err == nil {
		opts.JPEG = dec
	} else {
		fmt.Fprintf(stderr, "warning: decoding JPEG with Go's decoder, several times slower: %v\n", err)
	}
	fmt.Fprintf(stdout, "%-6s %9s %8s %9s %10s %9s  %s\n", "res", "images", "seconds", "images/s", "cache MB", "skipped", "cache")
	for _, res := range resolutions {
		if err := prepareOne(*data, res, opts, stdout, stderr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "peak RSS %.0f MB\n", float64(peakRSS())/1e6)
	return nil
}

func prepareOne(data string, res int, opts dataset.Options, stdout, stderr io.Writer) error {
	bar := progressBar(stderr)
	built := false
	opts.Progress = func(p dataset.BuildProgress) { built = true; bar(p) }
	start := time.Now()
	ds, err := dataset.Open(data, res, opts)
	bar(dataset.BuildProgress{}) // ends the bar's line
	if err != nil {
		return fmt.Errorf("%dpx: %w", res, err)
	}
	defer ds.Close()
	secs := time.Since(start).Seconds()
	n := ds.Train.N + ds.Val.N
	st, err := os.Stat(ds.CachePath)
	if err != nil {
		return err
	}
	took, rate := fmt.Sprintf("%.1f", secs), fmt.Sprintf("%.0f", float64(n)/secs)
	if !built {
		took, rate = "cached", "-"
	}
	fmt.Fprintf(stdout, "%-6d %9d %8s %9s %10.1f %9d  %s\n", res, n, took, rate, float64(st.Size())/1e6, ds.Skipped, ds.CachePath)
	for _, f := range ds.SkippedFiles {
		fmt.Fprintf(stdout, "  skipped: %s\n", f)
	}
	return nil
}

// progressBar draws build progress on one line of w, at most five times a
// second; a zero report ends the line.
func progressBar(w io.Writer) func(dataset.BuildProgress) {
	drawn := false
	var last time.Time
	return func(p dataset.BuildProgress) {
		if p.Total == 0 {
			if drawn {
				fmt.Fprintln(w)
			}
			return
		}
		if p.Done < p.Total && time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		filled := width * p.Done / p.Total
		fmt.Fprintf(w, "\r[%s%s] %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p)
		drawn = true
	}
}

// parseResolutions reads "224,320".
func parseResolutions(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("--resolutions is required, e.g. --resolutions 224,320")
	}
	out, err := lists.Ints("--resolutions", s)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		if r < 1 || r > dataset.MaxResolution {
			return nil, fmt.Errorf("--resolutions: %d is not a resolution in 1..%d", r, dataset.MaxResolution)
		}
	}
	return out, nil
}

// peakRSS is the process's peak resident memory in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
