package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/resomap/resomap/sweep"
)

// explain prints the sweep as it would run: every effective setting and
// where it came from (preset, file, flag or default), and how many
// combinations and trainings that makes. It contacts nothing.
func explain(o options, w io.Writer) error {
	spec, origins, err := loadSpecWithOrigins(o)
	if err != nil {
		return err
	}
	settings, err := sweep.Settings(spec)
	if err != nil {
		return err
	}
	cells := len(spec.Models) * len(spec.Resolutions)
	fmt.Fprintf(w, "sweep %s: %d models x %d resolutions = %d combinations, %d trainings (%d seeds each) of %d epochs\n\n",
		spec.Name, len(spec.Models), len(spec.Resolutions), cells, len(spec.Combinations()), max(1, len(spec.Seeds)), spec.Epochs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "setting\tvalue\tfrom")
	for _, s := range settings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Value, origins.Of(s.Key))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nno compute-time estimate: earlier runs' throughput is not consulted yet")
	return nil
}
