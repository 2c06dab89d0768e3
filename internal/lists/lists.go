// Package lists reads the comma-separated lists of the command lines
// (models, resolutions, seeds, hosts): one place for how a list is split
// and how its numbers are read.
package lists

import (
	"fmt"
	"strconv"
	"strings"
)

// Strings splits s at commas, each item trimmed, empty ones dropped
// ("a, b,," is a and b).
func Strings(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Ints reads s as a list of integers; an error names field and the item
// that is not one.
func Ints(field, s string) ([]int, error) {
	return parse(field, s, strconv.Atoi)
}

// Uint64s reads s as a list of unsigned 64-bit integers (seeds).
func Uint64s(field, s string) ([]uint64, error) {
	return parse(field, s, func(v string) (uint64, error) { return strconv.ParseUint(v, 10, 64) })
}

func parse[T any](field, s string, read func(string) (T, error)) ([]T, error) {
	var out []T
	for _, item := range Strings(s) {
		v, err := read(item)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", field, item)
		}
		out = append(out, v)
	}
	return out, nil
}
