package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 is a Store in an S3 bucket (or any S3-compatible server). Large objects
// go up and down as parallel multipart transfers; a multipart upload is
// completed only when every part is in and aborted otherwise, so an
// interrupted upload never becomes visible.
type S3 struct {
	client *s3.Client
	tm     *tm.Client
	bucket string
	prefix string
	url    string
	// idleTimeout and callTimeout bound operations (deadline.go).
	idleTimeout, callTimeout time.Duration
	writer                   string // stored as metadata (WriterID)
	createBucket             bool
}

// metadataDirective: a copy names its own writer, when there is one.
func (s *S3) metadataDirective() types.MetadataDirective {
	if s.writer == "" {
		return types.MetadataDirectiveCopy
	}
	return types.MetadataDirectiveReplace
}

// writerKey is the object metadata that names an object's writer.
const writerKey = "resomap-writer"

// metadata is what every stored object carries.
func (s *S3) metadata() map[string]string {
	if s.writer == "" {
		return nil
	}
	return map[string]string{writerKey: s.writer}
}

// NewS3 opens s3://bucket/prefix with the standard AWS configuration chain
// (AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID…, AWS_ENDPOINT_URL_S3 for
// S3-compatible servers). Path-style addressing: ?path_style=true or
// RESOMAP_S3_PATH_STYLE=true. It checks the bucket is reachable (and
// creates it with the CreateBucket option).
func NewS3(ctx context.Context, u *url.URL, opts ...Option) (*S3, error) {
	s := &S3{bucket: u.Host, prefix: strings.Trim(u.Path, "/"), url: "s3://" + u.Host + u.Path,
		idleTimeout: defaultIdleTimeout, callTimeout: defaultCallTimeout}
	for _, o := range opts {
		o(s)
	}
	if s.bucket == "" {
		return nil, fmt.Errorf("store %s: no bucket (use s3://bucket/prefix)", s.url)
	}
	pathStyle := u.Query().Get("path_style") == "true" || os.Getenv("RESOMAP_S3_PATH_STYLE") == "true"
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer {
			// Transient errors (5xx, throttling, dropped connections) are
			// retried with exponential backoff.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 8
				o.MaxBackoff = 10 * time.Second
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("store %s: AWS configuration: %w", s.url, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	// A server that takes the request and never answers fails the attempt
	// (which the retryer retries) rather than holding it for ever.
	cfg.HTTPClient = wireClient{next: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = s.idleTimeout
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second })}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		// Plain-http S3-compatible servers cannot take signed streaming
		// checksums on non-seekable bodies; send checksums only when required.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s.tm = tm.New(s.client, func(o *tm.Options) {
		o.PartSizeBytes = 16 << 20
		o.Concurrency = 8
		o.FailTimeout = 30 * time.Second // abort the multipart upload even if ctx ended
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.DisableChecksumValidation = true // our records carry SHA-256
	})
	if err := s.checkBucket(ctx); err != nil {
		return nil, fmt.Errorf("store %s: %w", s.url, err)
	}
	return s, nil
}

// checkBucket makes sure the bucket answers, creating it if it is missing
// and s may. Racing creators all succeed: one creates, the others find it.
func (s *S3) checkBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}, func(o *s3.Options) { o.RetryMaxAttempts = 2 })
	if err == nil {
		return nil
	}
	err = describe(err)
	if !errors.Is(err, errNoBucket) || !s.createBucket {
		return err
	}
	_, err = s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s.bucket, describe(err))
	}
	return nil
}

// errNoBucket: the store's bucket is missing.
var errNoBucket = errors.New("bucket does not exist")

// describeIn is describe, saying so when the store stopped answering
// (ctx's deadline or its transfer's watchdog ended the call).
func (s *S3) describeIn(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrUnreachable) {
		return cause
	}
	return describe(err)
}

// describe turns an SDK error into one readable line (never with secrets:
// the SDK's errors carry no credentials); a server that did not answer is
// ErrUnreachable, which may pass.
func describe(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NotFound", "NoSuchBucket":
			return errNoBucket
		case "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
			return errors.New("access denied: check the credentials (" + apiErr.ErrorCode() + ")")
		}
		return errors.New(apiErr.ErrorCode() + ": " + apiErr.ErrorMessage())
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

func (s *S3) URL() string { return s.url }

func (s *S3) key(k string) (string, error) {
	if err := checkKey(k); err != nil {
		return "", err
	}
	if s.prefix == "" {
		return k, nil
	}
	return s.prefix + "/" + k, nil
}

func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	t := newTransfer(ctx, s.idleTimeout)
	defer t.done()
	if _, err := s.tm.UploadObject(t.ctx, &tm.UploadObjectInput{Bucket: &s.bucket, Key: &k, Body: t.reader(r), Metadata: s.metadata()}); err != nil {
		return fmt.Errorf("put %s to %s: %w", key, s.url, s.describeIn(t.ctx, err))
	}
	return nil
}

// PutIfAbsent uses a conditional write (If-None-Match: *): of two racing
// writers exactly one succeeds.
func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	ctx, done := call(ctx, s.callTimeout)
	defer done()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: strings.NewReader(string(data)), IfNoneMatch: aws.String("*"), Metadata: s.metadata()})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "PreconditionFailed" || apiErr.ErrorCode() == "ConditionalRequestConflict") {
		return fmt.Errorf("put %s to %s: %w", key, s.url, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put %s to %s: %w", key, s.url, describe(err))
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}

func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	t := newTransfer(ctx, s.idleTimeout)
	out, err := s.tm.GetObject(t.ctx, &tm.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if isNotFound(err) {
		t.done()
		return nil, fmt.Errorf("get %s from %s: %w", key, s.url, ErrNotFound)
	}
	if err != nil {
		t.done()
		return nil, fmt.Errorf("get %s from %s: %w", key, s.url, s.describeIn(t.ctx, err))
	}
	return &transferBody{Reader: t.reader(out.Body), c: io.NopCloser(nil), t: t}, nil
}

func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	k, err := s.key(key)
	if err != nil {
		return Info{}, err
	}
	ctx, done := call(ctx, s.callTimeout)
	defer done()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if isNotFound(err) {
		return Info{}, fmt.Errorf("stat %s in %s: %w", key, s.url, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("stat %s in %s: %w", key, s.url, describe(err))
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), Writer: out.Metadata[writerKey]}, nil
}

func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	full := prefix
	if s.prefix != "" {
		full = s.prefix + "/" + prefix
	}
	var out []Info
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	for p.HasMorePages() {
		cctx, done := call(ctx, s.callTimeout)
		page, err := p.NextPage(cctx)
		done()
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", prefix, s.url, describe(err))
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.prefix != "" {
				k = strings.TrimPrefix(k, s.prefix+"/")
			}
			out = append(out, Info{Key: k, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	ctx, done := call(ctx, s.callTimeout)
	defer done()
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s from %s: %w", key, s.url, describe(err))
	}
	return nil
}

// AbortStaleUploads aborts multipart uploads under the prefix older than
// age: parts of uploads whose writer died are never visible, but they cost
// storage until aborted.
func (s *S3) AbortStaleUploads(ctx context.Context, age time.Duration) ([]string, error) {
	var aborted []string
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: aws.String(s.prefix)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return aborted, fmt.Errorf("list uploads in %s: %w", s.url, describe(err))
		}
		for _, u := range page.Uploads {
			if time.Since(aws.ToTime(u.Initiated)) < age {
				continue
			}
			if _, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
				return aborted, fmt.Errorf("abort upload of %s: %w", aws.ToString(u.Key), describe(err))
			}
			aborted = append(aborted, path.Clean(aws.ToString(u.Key)))
		}
		if !aws.ToBool(page.IsTruncated) {
			return aborted, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// maxServerCopy is S3's limit for a single CopyObject.
const maxServerCopy = 5 << 30

// Copy copies inside the bucket on the server (CopyObject); objects over
// S3's 5 GB copy limit are streamed.
func (s *S3) Copy(ctx context.Context, from, to string) error {
	info, err := s.Stat(ctx, from)
	if err != nil {
		return err
	}
	src, err := s.key(from)
	if err != nil {
		return err
	}
	dst, err := s.key(to)
	if err != nil {
		return err
	}
	if info.Size > maxServerCopy {
		rc, err := s.Get(ctx, from)
		if err != nil {
			return err
		}
		defer rc.Close()
		return s.Put(ctx, to, rc)
	}
	source := s.bucket + "/" + (&url.URL{Path: src}).EscapedPath()
	// A server-side copy moves no bytes here: bound it by the object's
	// size at a slow 10 MB/s, on top of a small call's time.
	ctx, done := call(ctx, s.callTimeout+time.Duration(info.Size/(10<<20))*time.Second)
	defer done()
	if _, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: &source, Metadata: s.metadata(), MetadataDirective: s.metadataDirective()}); err != nil {
		return fmt.Errorf("copy %s to %s in %s: %w", from, to, s.url, describe(err))
	}
	return nil
}
