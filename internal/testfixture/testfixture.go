// Package testfixture holds what tests in several packages share: folders
// of synthetic photos and a process's memory figures from /proc. It is
// imported by tests only.
package testfixture

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Photos describes an image folder: N images of W x H, image i in class
// folder Classes[i % len(Classes)], painted by Paint.
type Photos struct {
	N, W, H int
	Classes []string // default: a, b
	PNG     bool     // PNG instead of JPEG
	Quality int      // JPEG quality (default 90)
	// Name is image i's file name without extension (default: %04d).
	Name func(i int) string
	// Paint draws image i of class cls (an index into Classes).
	Paint func(img *image.RGBA, i, cls int)
}

// Write writes the photos into dir (created as needed) and returns dir.
func (p Photos) Write(t testing.TB, dir string) string {
	t.Helper()
	classes := p.Classes
	if len(classes) == 0 {
		classes = []string{"a", "b"}
	}
	name, ext := p.Name, ".jpg"
	if name == nil {
		name = func(i int) string { return fmt.Sprintf("%04d", i) }
	}
	if p.PNG {
		ext = ".png"
	}
	for i := range p.N {
		cls := i % len(classes)
		img := image.NewRGBA(image.Rect(0, 0, p.W, p.H))
		p.Paint(img, i, cls)
		path := filepath.Join(dir, classes[cls], name(i)+ext)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, p.encode(t, img), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (p Photos) encode(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	var err error
	if p.PNG {
		err = png.Encode(&buf, img)
	} else {
		q := p.Quality
		if q == 0 {
			q = 90
		}
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: q})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Self is this process, for the memory readers.
const Self = 0

// PeakRSS is a process's peak resident memory in bytes (VmHWM).
func PeakRSS(pid int) (int64, error) { return statusBytes(pid, "VmHWM") }

// VMSize is a process's virtual memory size in bytes (VmSize).
func VMSize(pid int) (int64, error) { return statusBytes(pid, "VmSize") }

// statusBytes reads a kB field of /proc/<pid>/status.
func statusBytes(pid int, field string) (int64, error) {
	proc := "self"
	if pid != Self {
		proc = strconv.Itoa(pid)
	}
	b, err := os.ReadFile(filepath.Join("/proc", proc, "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%s/status has no %s", proc, field)
}

// Long skips t in the fast tier (go test -short, make test-fast), saying
// why: it needs a server, helper processes or Python, or runs long. The
// full suite (make test, CI) runs it.
func Long(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}
