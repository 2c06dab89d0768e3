package dataset

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/resomap/resomap/dataset/turbojpeg"
	"github.com/resomap/resomap/internal/testfixture"
)

// torchvision runs the repository's reference script with Debian's Python
// (python3-torchvision).
func torchvision(t testing.TB, args ...string) {
	t.Helper()
	testfixture.Long(t, "compares with torchvision in Python")
	script, _ := filepath.Abs("testdata/torchvision_reference.py")
	out, err := exec.Command("/usr/bin/python3", append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("torchvision reference %v: %v\n%s", args, err, out)
	}
}

// photoFolder makes an image folder of PIL-written JPEGs with train/ and
// val/ holding the same files, so both splits' order is known.
func photoFolder(t testing.TB) (dir string, files []string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	torchvision(t, "make", src)
	dir = filepath.Join(t.TempDir(), "photos")
	for _, cls := range []string{"a", "b"} {
		names, _ := filepath.Glob(filepath.Join(src, cls, "*.jpg"))
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			for _, split := range []string{"train", "val"} {
				p := filepath.Join(dir, split, cls, filepath.Base(n))
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			files = append(files, n)
		}
	}
	return dir, files
}

// diff is the mean and largest absolute difference of two byte images.
func diff(a, b []byte) (mean float64, most int) {
	var sum int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		most = max(most, d)
	}
	return float64(sum) / float64(len(a)), most
}

// planarToInterleaved turns a C x H x W image into H x W x C.
func planarToInterleaved(p []byte, c, plane int) []byte {
	out := make([]byte, len(p))
	for ch := 0; ch < c; ch++ {
		for i := 0; i < plane; i++ {
			out[i*c+ch] = p[ch*plane+i]
		}
	}
	return out
}

// The ImageNet recipe's validation images and training crops equal
// torchvision's (PIL) transforms of the same JPEGs: decoded by libjpeg-turbo
// (DCT-domain shrinking for the large ones) and resized with PIL's filter.
func TestImageNetRecipeMatchesTorchvision(t *testing.T) {
	dec, err := turbojpeg.Open()
	if err != nil {
		t.Fatal(err)
	}
	dir, files := photoFolder(t)
	for _, res := range []int{224, 96} {
		ds, err := Open(dir, res, Options{CacheDir: t.TempDir(), JPEG: dec, Augment: AugmentImageNet})
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		if ds.Train.N != len(files) || ds.Val.N != len(files) || !ds.Train.Stored() {
			t.Fatalf("%d train, %d val images, stored %v; want %d", ds.Train.N, ds.Val.N, ds.Train.Stored(), len(files))
		}
		type item struct {
			Path string `json:"path"`
			Box  [5]int `json:"box"` // top, left, height, width, flip
		}
		job := struct {
			Res   int    `json:"res"`
			Files []item `json:"files"`
		}{Res: res}
		rng := rand.New(rand.NewPCG(uint64(res), 1))
		boxes := make([]box, len(files))
		for k, f := range files {
			img := ds.Train.photo(k)
			boxes[k] = randomResizedCrop(rng, img.w, img.h)
			b := boxes[k]
			job.Files = append(job.Files, item{Path: f, Box: [5]int{b.y, b.x, b.h, b.w, k % 2}})
		}
		jobPath, out := filepath.Join(t.TempDir(), "job.json"), t.TempDir()
		js, _ := json.Marshal(job)
		os.WriteFile(jobPath, js, 0o644)
		torchvision(t, "reference", jobPath, out)

		worstVal, worstCrop, mostVal, mostCrop := 0.0, 0.0, 0, 0
		var c cropScratch
		for k := range files {
			want, _ := os.ReadFile(filepath.Join(out, "val_"+itoa(k)+".raw"))
			got := planarToInterleaved(ds.Val.Image(k), 3, res*res)
			m, most := diff(got, want)
			worstVal, mostVal = math.Max(worstVal, m), max(mostVal, most)

			want, _ = os.ReadFile(filepath.Join(out, "crop_"+itoa(k)+".raw"))
			crop := make([]byte, 3*res*res)
			resampleBoxPlanar(ds.Train.photo(k), boxes[k], res, res, k%2 == 1, crop, &c)
			m, most = diff(planarToInterleaved(crop, 3, res*res), want)
			worstCrop, mostCrop = math.Max(worstCrop, m), max(mostCrop, most)
		}
		t.Logf("%dpx vs torchvision: validation mean |diff| <= %.3f (max %d), training crop <= %.3f (max %d) grey levels",
			res, worstVal, mostVal, worstCrop, mostCrop)
		if worstVal > 1 || worstCrop > 1 {
			t.Errorf("%dpx: mean absolute difference %.3f (validation), %.3f (crop); want <= 1", res, worstVal, worstCrop)
		}
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
