package pretrained

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// TorchvisionBase is where torchvision publishes its weights.
const TorchvisionBase = "https://download.pytorch.org/models/"

// torchvision maps ResoMap's model names to torchvision's ImageNet weights
// (IMAGENET1K_V1, what pretrained=True gave), by file name: the hex after
// the last '-' is the start of the file's SHA-256, as torch.hub checks it.
var torchvision = map[string]string{
	"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth", "resnet50": "resnet50-0676ba61.pth",
	"vgg11": "vgg11-8a719046.pth", "vgg11_bn": "vgg11_bn-6002323d.pth",
	"vgg13": "vgg13-19584684.pth", "vgg13_bn": "vgg13_bn-abd245e5.pth",
	"vgg16": "vgg16-397923af.pth", "vgg16_bn": "vgg16_bn-6c64b313.pth",
	"vgg19": "vgg19-dcbb9e9d.pth", "vgg19_bn": "vgg19_bn-c79401a0.pth",
}

// TorchvisionPrefix names torchvision's weights of a model in a source.
const TorchvisionPrefix = "torchvision:"

// ErrChecksum marks a download whose content is not what its name says.
var ErrChecksum = errors.New("checksum mismatch")

// ErrMissing marks weights that are not where the source says (a local
// path, or a name torchvision has not).
var ErrMissing = errors.New("no such weights")

// Fetcher finds weights: a local path, an http(s) URL (downloaded once into
// CacheDir) or torchvision:NAME (torchvision's URL, from Base).
type Fetcher struct {
	CacheDir string       // "": the user's cache folder, resomap/weights
	Base     string       // torchvision's base URL ("": TorchvisionBase)
	Client   *http.Client // nil: http.DefaultClient
}

// Fetched is a weights file on this machine and its content's SHA-256.
type Fetched struct {
	Path   string
	SHA256 string
}

// Fetch returns the local file of source, downloading it if need be. A
// file whose name carries a checksum (torch.hub's name-<sha256 prefix>.ext)
// is refused when its content does not match, downloaded or cached.
func (f Fetcher) Fetch(ctx context.Context, source string) (Fetched, error) {
	if name, ok := strings.CutPrefix(source, TorchvisionPrefix); ok {
		file, ok := torchvision[name]
		if !ok {
			return Fetched{}, fmt.Errorf("%w: %s: torchvision has no ImageNet weights ResoMap knows for %q (known: resnet18, resnet34, resnet50, vgg11…vgg19, _bn)", ErrMissing, source, name)
		}
		base := f.Base
		if base == "" {
			base = TorchvisionBase
		}
		source = strings.TrimSuffix(base, "/") + "/" + file
	}
	if u, err := url.Parse(source); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return f.download(ctx, u)
	}
	sum, err := fileSHA256(source)
	if errors.Is(err, os.ErrNotExist) {
		return Fetched{}, fmt.Errorf("%w: %s is not a file here (give a path on every worker, an URL or torchvision:NAME)", ErrMissing, source)
	}
	if err != nil {
		return Fetched{}, fmt.Errorf("weights %s: %w", source, err)
	}
	return Fetched{Path: source, SHA256: sum}, checkName(source, sum)
}

// download fetches u into the cache (or finds it there), verified.
func (f Fetcher) download(ctx context.Context, u *url.URL) (Fetched, error) {
	dir := f.CacheDir
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return Fetched{}, fmt.Errorf("weights cache: %w (give a path to the weights instead)", err)
		}
		dir = filepath.Join(c, "resomap", "weights")
	}
	name := path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		return Fetched{}, fmt.Errorf("weights %s: the URL names no file", u.Redacted())
	}
	dst := filepath.Join(dir, urlKey(u), name)
	if sum, err := fileSHA256(dst); err == nil && checkName(dst, sum) == nil {
		return Fetched{Path: dst, SHA256: sum}, nil // cached and good
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Fetched{}, err
	}
	sum, err := f.get(ctx, u, dst)
	if err != nil {
		return Fetched{}, fmt.Errorf("weights %s: %w", u.Redacted(), err)
	}
	return Fetched{Path: dst, SHA256: sum}, nil
}

// urlKey names u's folder in the cache: the whole URL (credentials apart,
// which do not change what it serves), not its file name, so that two
// URLs ending in model.safetensors never share a cached file.
func urlKey(u *url.URL) string {
	bare := *u
	bare.User = nil
	sum := sha256.Sum256([]byte(bare.String()))
	return hex.EncodeToString(sum[:8])
}

// get downloads u to dst through a temporary file, renamed only once the
// whole body arrived and its checksum matched dst's name.
func (f Fetcher) get(ctx context.Context, u *url.URL, dst string) (string, error) {
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w (an offline machine: download it elsewhere and give its path)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download: %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", fmt.Errorf("download: %d of %d bytes", n, resp.ContentLength)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := checkName(dst, sum); err != nil {
		return "", err
	}
	return sum, os.Rename(tmp.Name(), dst)
}

// hubName is torch.hub's convention: name-<hex>.ext, hex a SHA-256 prefix.
var hubName = regexp.MustCompile(`-([a-f0-9]{8,64})\.[A-Za-z0-9]+$`)

// checkName refuses a file whose name carries a checksum its content
// does not have.
func checkName(p, sum string) error {
	m := hubName.FindStringSubmatch(filepath.Base(p))
	if m == nil || strings.HasPrefix(sum, m[1]) {
		return nil
	}
	return fmt.Errorf("%w: %s has SHA-256 %.16s…, its name says %s… (a corrupted or partial download; delete it and try again)", ErrChecksum, p, sum, m[1])
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
