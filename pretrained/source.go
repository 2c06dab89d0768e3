package pretrained

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resomap/resomap/internal/confine"
	"github.com/resomap/resomap/internal/errkind"
	"github.com/resomap/resomap/internal/iowatch"
	"github.com/resomap/resomap/internal/redact"
	"github.com/resomap/resomap/sweep"
)

// TorchvisionBase is where torchvision publishes its weights.
const TorchvisionBase = "https://download.pytorch.org/models/"

// torchvisionFile is torchvision's ImageNet weights file of model
// (IMAGENET1K_V1, what pretrained=True gave; "": none), from the model
// registry (sweep.ModelInfo.Torchvision): the hex after the last '-' is
// the start of the file's SHA-256, as torch.hub checks it.
func torchvisionFile(model string) string {
	info, err := sweep.LookupModel(model)
	if err != nil {
		return ""
	}
	return info.Torchvision
}

// TorchvisionModels lists the models torchvision:NAME names weights for.
func TorchvisionModels() []string {
	var out []string
	for _, m := range sweep.Models() {
		if m.Torchvision != "" {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TorchvisionPrefix names torchvision's weights of a model in a source.
const TorchvisionPrefix = "torchvision:"

// ErrChecksum marks a download whose content is not what its name says.
var ErrChecksum = errors.New("checksum mismatch")

// ErrMissing marks weights that are not where the source says (a local
// path, or a name torchvision has not).
var ErrMissing = errkind.New(errkind.Invalid, "no such weights")

// ErrRefused marks weights this worker will not fetch or read: a host off
// its allow-list, a path outside its roots, a file over its size limit, an
// address a spec must not reach (link-local: cloud metadata services).
var ErrRefused = errkind.New(errkind.Invalid, "weights refused")

// Download bounds, the defaults of Fetcher's.
const (
	// DefaultMaxBytes: the largest torchvision ImageNet weights (ViT-H/14)
	// are 2.5 GB.
	DefaultMaxBytes = 4 << 30
	// DefaultIdleTimeout: a download that moves no byte this long (a server
	// that sent its headers and stalled) is given up.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMinRate and DefaultRateWindow: a download that moves bytes,
	// but fewer than MinRate a second over each RateWindow (a server
	// dripping a byte a minute keeps the idle bound at bay), is given up.
	DefaultMinRate    = 8 << 10
	DefaultRateWindow = 2 * time.Minute
)

// Fetcher finds weights: a local path, an http(s) URL (downloaded once into
// CacheDir) or torchvision:NAME (torchvision's URL, from Base).
//
// Downloads run in the caller's context and tell its I/O watcher (an
// activity's heartbeater: pause, cancel and the stall detector reach them)
// of every byte; each is bounded by MaxBytes and by IdleTimeout without a
// byte, and connecting and the response's headers by the client's timeouts.
type Fetcher struct {
	CacheDir string       // "": the user's cache folder, resomap/weights
	Base     string       // torchvision's base URL ("": TorchvisionBase)
	Client   *http.Client // nil: NewClient()

	MaxBytes    int64         // a download's limit (0: DefaultMaxBytes)
	IdleTimeout time.Duration // 0: DefaultIdleTimeout
	MinRate     int64         // bytes/s over each RateWindow (0: DefaultMinRate; negative: none)
	RateWindow  time.Duration // 0: DefaultRateWindow
	// AllowHosts, if any, are the hosts weights may come from (redirects
	// included): "example.com" that host, ".example.com" its subdomains,
	// on any port; "example.com:8443" only on that port (CheckAllowHosts).
	AllowHosts []string
	// Roots, if any, are the folders local weights files must lie in.
	Roots confine.Roots
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
		file := torchvisionFile(name)
		if file == "" {
			return Fetched{}, fmt.Errorf("%w: %s: torchvision has no ImageNet weights ResoMap knows for %q (known: %s)", ErrMissing, source, name,
				strings.Join(TorchvisionModels(), ", "))
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
	return f.local(ctx, source)
}

// local finds weights at a path: inside the roots (checked first, so a
// path outside is refused alike whether it exists or not), a regular file
// (not /dev/zero, nor a FIFO that blocks its reader), at most MaxBytes,
// hashed in ctx.
func (f Fetcher) local(ctx context.Context, source string) (Fetched, error) {
	p, err := f.Roots.Resolve(source)
	if err != nil && !errors.Is(err, os.ErrNotExist) { // a missing path inside the roots says so below
		return Fetched{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	var st os.FileInfo
	if err == nil {
		st, err = os.Stat(p)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Fetched{}, fmt.Errorf("%w: %s is not a file here (give a path on every worker, an URL or torchvision:NAME)", ErrMissing, source)
	case err != nil:
		return Fetched{}, fmt.Errorf("weights %s: %w", source, err)
	case !st.Mode().IsRegular():
		return Fetched{}, fmt.Errorf("%w: %s is not a regular file (%s)", ErrRefused, source, st.Mode().Type())
	case st.Size() > f.maxBytes():
		return Fetched{}, fmt.Errorf("%w: %s: %d bytes, over this worker's limit of %d", ErrRefused, source, st.Size(), f.maxBytes())
	}
	sum, err := fileSHA256(ctx, p)
	if err != nil {
		return Fetched{}, fmt.Errorf("weights %s: %w", source, err)
	}
	return Fetched{Path: p, SHA256: sum}, checkName(p, sum)
}

// download fetches u into the cache (or finds it there), verified.
func (f Fetcher) download(ctx context.Context, u *url.URL) (Fetched, error) {
	if u.User != nil {
		return Fetched{}, fmt.Errorf("%w: %s: credentials in a weights URL would be stored and shown with the spec; serve the file without them, or give a path", ErrRefused, redact.URL(u.String()))
	}
	if err := f.allowHost(u); err != nil {
		return Fetched{}, err
	}
	dir, err := f.cacheDir()
	if err != nil {
		return Fetched{}, err
	}
	name := path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		return Fetched{}, fmt.Errorf("weights %s: the URL names no file", redact.URL(u.String()))
	}
	dst := filepath.Join(dir, urlKey(u), name)
	if sum, err := fileSHA256(ctx, dst); err == nil && checkName(dst, sum) == nil {
		return Fetched{Path: dst, SHA256: sum}, nil // cached and good
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Fetched{}, err
	}
	sum, err := f.get(ctx, u, dst)
	if err != nil {
		return Fetched{}, fmt.Errorf("weights %s: %w", redact.URL(u.String()), err)
	}
	return Fetched{Path: dst, SHA256: sum}, nil
}

// maxBytes is the largest weights file this fetcher takes.
func (f Fetcher) maxBytes() int64 { return cmp.Or(f.MaxBytes, DefaultMaxBytes) }

// allowHost refuses a URL whose host (and port) is off the allow-list
// (if any).
func (f Fetcher) allowHost(u *url.URL) error {
	if len(f.AllowHosts) == 0 {
		return nil
	}
	host, port := strings.ToLower(u.Hostname()), urlPort(u)
	for _, entry := range f.AllowHosts {
		a, aport, err := allowEntry(entry)
		if err != nil {
			continue // CheckAllowHosts refused it when the worker started
		}
		if (host == a || strings.HasPrefix(a, ".") && strings.HasSuffix(host, a)) && (aport == "" || aport == port) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s: %s is not among the hosts this worker fetches weights from (%s)", ErrRefused, redact.URL(u.String()),
		net.JoinHostPort(host, port), strings.Join(f.AllowHosts, ", "))
}

// urlPort is u's port, its scheme's when it names none.
func urlPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			return strconv.Itoa(n) // "08443" is 8443
		}
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// allowEntry splits an allow-list entry into its host (lower case, an
// IPv6 address without brackets) and its port ("": any).
func allowEntry(entry string) (host, port string, err error) {
	entry = strings.ToLower(strings.TrimSpace(entry))
	if _, perr := netip.ParseAddr(entry); perr == nil { // an IPv6 address has colons of its own
		return entry, "", nil
	}
	if !strings.Contains(entry, ":") {
		return entry, "", nil
	}
	host, port, err = net.SplitHostPort(entry)
	if err != nil {
		return "", "", fmt.Errorf("allowed host %q: %w", entry, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("allowed host %q: port %q is not 1..65535", entry, port)
	}
	if host == "" {
		return "", "", fmt.Errorf("allowed host %q: no host", entry)
	}
	return host, strconv.Itoa(n), nil // "08443" is 8443, as in a URL
}

// CheckAllowHosts refuses an allow-list with an entry allowHost cannot
// read, so that a worker does not start with a list that allows less (or
// other) than its operator wrote.
func CheckAllowHosts(entries []string) error {
	for _, e := range entries {
		if _, _, err := allowEntry(e); err != nil {
			return err
		}
	}
	return nil
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

// NewClient is the default client of downloads: proxies from the
// environment, connecting and the response's headers bounded, and no
// connection to a link-local address (169.254.169.254 serves cloud
// credentials to whoever asks from the machine).
func NewClient() *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, Control: refuseLinkLocal}
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext,
		TLSHandshakeTimeout: 30 * time.Second, ResponseHeaderTimeout: time.Minute,
		MaxIdleConns: 4, IdleConnTimeout: 90 * time.Second,
	}}
}

func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	return refuseAddr(ap.Addr())
}

// metadataAddrs serve a cloud machine's credentials without being
// link-local: AWS's IPv6 instance metadata, Alibaba's.
var metadataAddrs = []netip.Addr{netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("100.100.100.200")}

// refuseAddr refuses an address a spec must not make a worker reach.
func refuseAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || slices.Contains(metadataAddrs, a) {
		return fmt.Errorf("%w: %s is a link-local or cloud metadata address", ErrRefused, a)
	}
	return nil
}

// refuseTarget refuses a host that is, or resolves to, such an address:
// through a proxy the dial sees only the proxy's address. (A name that
// resolves otherwise at the dial is caught there when there is no proxy.)
func refuseTarget(ctx context.Context, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return refuseAddr(a)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // the request says why
	}
	for _, a := range addrs {
		if err := refuseAddr(a); err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
	}
	return nil
}

// get downloads u to dst through a temporary file, renamed only once the
// whole body arrived and its checksum matched dst's name.
func (f Fetcher) get(ctx context.Context, u *url.URL, dst string) (string, error) {
	// Only when a request is made: a cached file needs no DNS lookup.
	if err := refuseTarget(ctx, u.Hostname()); err != nil {
		return "", err
	}
	bounded := f.boundedClient()
	limit := f.maxBytes()
	idle := cmp.Or(f.IdleTimeout, DefaultIdleTimeout)

	// The whole request waits inside the caller's I/O wait, bounded by
	// idle without a byte (connecting and the headers included).
	defer iowatch.Begin(ctx)()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := time.AfterFunc(idle, func() {
		cancel(fmt.Errorf("no byte for %v: download given up (the server stalled)", idle))
	})
	defer stalled.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := bounded.Do(req)
	if err != nil {
		return "", downloadError(ctx, err)
	}
	defer resp.Body.Close()
	if err := checkResponse(resp, limit); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	body := &idleReader{r: iowatch.Reader(ctx, resp.Body), timer: stalled, idle: idle,
		minRate: cmp.Or(f.MinRate, DefaultMinRate), window: cmp.Or(f.RateWindow, DefaultRateWindow), since: time.Now(),
		slow: cancel}
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return "", downloadError(ctx, err)
	case n > limit:
		return "", fmt.Errorf("%w: over this worker's limit of %d bytes", ErrRefused, limit)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return "", fmt.Errorf("download: %d of %d bytes", n, resp.ContentLength)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := checkName(dst, sum); err != nil {
		return "", err
	}
	return sum, os.Rename(tmp.Name(), dst)
}

// boundedClient is the fetcher's HTTP client with every redirect held to
// the allow-list.
func (f Fetcher) boundedClient() *http.Client {
	client := f.Client
	if client == nil {
		client = NewClient()
	}
	bounded := *client
	bounded.CheckRedirect = f.checkRedirect(client.CheckRedirect)
	return &bounded
}

// checkResponse refuses a download's response that is no file, or one
// that says it is larger than limit.
func checkResponse(resp *http.Response, limit int64) error {
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: download: %s", ErrMissing, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("download: %s", resp.Status)
	case resp.ContentLength > limit:
		return fmt.Errorf("%w: %d bytes, over this worker's limit of %d", ErrRefused, resp.ContentLength, limit)
	}
	return nil
}

// checkRedirect holds every hop of a redirect to the allow-list too.
func (f Fetcher) checkRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if err := f.allowHost(req.URL); err != nil {
			return err
		}
		if err := refuseTarget(req.Context(), req.URL.Hostname()); err != nil {
			return err
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// downloadError says why a download failed: the idle bound's or the
// caller's reason when its context ended, else err.
func downloadError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL) // Go elides a password, never a presigned query
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	if errors.Is(err, ErrRefused) {
		return err
	}
	return fmt.Errorf("%w (an offline machine: download it elsewhere and give its path)", err)
}

// idleReader restarts the idle bound on every read that moved bytes, and
// gives the download up (slow) when a window of its time moved fewer
// bytes than minRate a second: a trickle is bounded too.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration

	minRate int64
	window  time.Duration
	since   time.Time // this window's start
	moved   int64     // in this window
	slow    func(error)
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	r.moved += int64(n)
	if took := time.Since(r.since); r.minRate > 0 && took >= r.window {
		if rate := float64(r.moved) / took.Seconds(); rate < float64(r.minRate) {
			cause := fmt.Errorf("%.0f bytes/s over %v, under this worker's minimum of %d: download given up (the server or the link is too slow)",
				rate, took.Round(time.Second), r.minRate)
			r.slow(cause)
			return n, cause
		}
		r.since, r.moved = time.Now(), 0
	}
	return n, err
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

// fileSHA256 hashes a file, stopping when ctx ends and telling ctx's I/O
// watcher of its progress.
func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	defer iowatch.Begin(ctx)()
	h := sha256.New()
	if _, err := io.Copy(h, iowatch.Reader(ctx, ctxReader{ctx, f})); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader is r, failing once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
