package main

import (
	"errors"
	"strings"
	"testing"
)

// Every command takes the flags its table entry declares (each one known
// to the parser) and refuses any other with its own usage; an unknown
// command lists the commands.
func TestEachCommandTakesItsOwnFlags(t *testing.T) {
	sample := map[string]string{"wait": "true", "all": "true", "failed": "true", "watch": "true", "dry-run": "true", "watch-every": "1s", "epochs": "1", "price-per-hour": "1"}
	for _, c := range commands {
		for _, name := range c.names {
			for _, f := range append(append([]string(nil), c.flags...), commonFlags...) {
				v, ok := sample[f]
				if !ok {
					v = "x"
				}
				if _, _, err := parse([]string{name, "--" + f + "=" + v}); err != nil {
					t.Errorf("starter %s --%s=%s: %v", name, f, v, err)
				}
			}
		}
	}
	// What the README and the scripts run, and what add reads when it
	// starts a finished sweep again or reads a preset's spec.
	for _, args := range [][]string{
		{"add", "--sweep", "resomap", "--data", "/photos", "--models", "resnet18", "--wait"},
		{"add", "--sweep", "default", "--resolutions", "40", "--out", "r", "--price-per-hour", "2"},
		{"report", "--sweep", "default", "--watch", "--watch-every", "1s", "--out", "r"},
		{"--sweep", "default", "--store", "file:///tmp/s", "--wait"},
	} {
		if _, _, err := parse(args); err != nil {
			t.Errorf("starter %v: %v", args, err)
		}
	}
	_, _, err := parse([]string{"gc", "--watch"})
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "starter gc takes no --watch") || !strings.Contains(err.Error(), "usage: starter gc [--dry-run]") {
		t.Errorf("starter gc --watch: %v", err)
	}
	if _, _, err := parse([]string{"--sweep", "default", "--dry-run"}); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "takes no --dry-run") {
		t.Errorf("starter --sweep default --dry-run: %v", err)
	}
	if _, _, err := parse([]string{"gc", "--watch", "--combination", "m@1"}); err == nil || !strings.Contains(err.Error(), "takes no --combination") {
		t.Errorf("two flags gc does not take: %v; want the first in order named", err)
	}
	if _, _, err := parse([]string{"frobnicate"}); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "status, pause, resume, cancel") {
		t.Errorf("an unknown command: %v", err)
	}
	var b strings.Builder
	usage(&b)
	for _, c := range commands {
		if !strings.Contains(b.String(), c.usage) {
			t.Errorf("usage lacks %q", c.usage)
		}
	}
}
