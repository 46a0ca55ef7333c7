package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/commonops/commonops"
)

// S3 store defaults and limits.
const (
	// RegionDefault is the region URLs are signed for.
	RegionDefault = "us-east-1"
	// PartSizeDefault is the part size of uploads written through Create:
	// the memory one upload holds, and a 10,000-part object of up to
	// 156 GiB.
	PartSizeDefault = 16 << 20
	// MinPartSize is the smallest part S3 accepts (but for the last).
	MinPartSize = 5 << 20
	// MaxSinglePut is the most S3 accepts in one PUT, and so through one
	// pre-signed upload URL: 5 GiB. Larger files need a multipart upload.
	MaxSinglePut int64 = 5 << 30
)

// s3Retries is how often a request is tried before the store is declared
// unavailable: enough for a blip, short enough for a health check.
const s3Retries = 3

// S3Config configures an S3-compatible store (AWS S3, MinIO, versitygw).
type S3Config struct {
	// Endpoint is the host:port the service reaches the store at (an
	// http:// or https:// URL is accepted too, its scheme overriding
	// UseSSL). Required.
	Endpoint string
	// PublicEndpoint is the host:port clients reach the store at, which
	// pre-signed URLs are signed for (an http:// or https:// URL is
	// accepted, its scheme overriding UseSSL for those URLs). Defaults to
	// Endpoint.
	PublicEndpoint string
	// UseSSL selects https. Defaults to false.
	UseSSL bool
	// Region is the bucket's region, fixed so that signing a URL needs no
	// network call. Defaults to RegionDefault.
	Region string
	// Bucket holds every object. Required.
	Bucket string
	// AccessKey and SecretKey are the credentials. Required.
	AccessKey, SecretKey string
	// PathStyle puts the bucket in the path (http://host/bucket/key) rather
	// than the host name. Defaults to false: virtual-host style where the
	// endpoint is known to support it (AWS, GCS, Aliyun), path style
	// elsewhere (MinIO, versitygw, an IP address).
	PathStyle bool
	// CreateBucket creates Bucket at start if it is missing. Defaults to
	// false.
	CreateBucket bool
	// PartSize is the part size of uploads through Create, at least
	// MinPartSize. Defaults to PartSizeDefault.
	PartSize uint64
	// CORSOrigins are the origins of web pages (scheme://host[:port], as
	// ParseOrigins returns them) that upload through pre-signed URLs from a
	// browser, such as the console's. When set, NewS3 writes the bucket's
	// CORS rule CORSRuleID for them, keeping the bucket's other rules.
	// Defaults to none: the bucket's CORS configuration is left alone.
	CORSOrigins []string
}

// S3 keeps files in one bucket of an S3-compatible store. Clients upload and
// download straight to and from the store through pre-signed URLs, so no
// file passes through the service.
//
// Limits: a pre-signed PUT is a single S3 PUT, capped by S3 at 5 GiB
// (MaxSinglePut). It cannot enforce a size limit, so PutOptions.MaxSize is
// not carried by the URL: the service refuses an announced fileSize over
// its limit at create, and checks the object's real size with Stat when the
// upload is confirmed. Objects written through Create use a multipart
// upload and have no such cap.
type S3 struct {
	client   *minio.Client
	public   *minio.Client
	bucket   string
	partSize uint64
	origin   string // of the URLs handed to clients (URLOrigin)
	source   string // URLSource
}

var _ Store = (*S3)(nil)

// NewS3 returns a store for cfg.Bucket. It contacts the store only to create
// the bucket (CreateBucket) and write its CORS rule (CORSOrigins), so
// without those the service starts while the store is down and reports it
// through Check.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("s3 store: endpoint is required")
	case cfg.Bucket == "":
		return nil, errors.New("s3 store: bucket is required")
	case s3utils.CheckValidBucketNameStrict(cfg.Bucket) != nil:
		return nil, fmt.Errorf("s3 store: bucket %q: %w", cfg.Bucket, s3utils.CheckValidBucketNameStrict(cfg.Bucket))
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return nil, errors.New("s3 store: access key and secret key are required")
	case cfg.PartSize != 0 && cfg.PartSize < MinPartSize:
		return nil, fmt.Errorf("s3 store: part size %d is under the S3 minimum of %d", cfg.PartSize, MinPartSize)
	}
	if cfg.Region == "" {
		cfg.Region = RegionDefault
	}
	if cfg.PublicEndpoint == "" {
		cfg.PublicEndpoint = cfg.Endpoint
	}
	s := &S3{bucket: cfg.Bucket, partSize: cfg.PartSize}
	if s.partSize == 0 {
		s.partSize = PartSizeDefault
	}
	var err error
	if s.client, err = newMinio(cfg.Endpoint, cfg); err != nil {
		return nil, err
	}
	if s.public, err = newMinio(cfg.PublicEndpoint, cfg); err != nil {
		return nil, err
	}
	// The client that signs the URLs decides their host (virtual-host
	// style puts the bucket in it), so the origin is read off a signed URL
	// rather than worked out again here.
	signed, err := s.public.PresignedPutObject(ctx, s.bucket, "origin", time.Minute)
	if err != nil {
		return nil, fmt.Errorf("s3 store: sign a URL for %q: %w", cfg.PublicEndpoint, err)
	}
	s.origin = signed.Scheme + "://" + signed.Host
	s.source = s.origin
	if dir := path.Dir(signed.Path); dir != "/" { // path style: /bucket/origin
		s.source += dir + "/"
	}
	if cfg.CreateBucket {
		if err := s.createBucket(ctx, cfg.Region); err != nil {
			return nil, err
		}
	}
	if len(cfg.CORSOrigins) > 0 {
		if err := s.putCORS(ctx, cfg.CORSOrigins); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// URLOrigin is the origin (scheme://host[:port]) of the URLs the store
// hands to clients: where a browser page sends an upload, and so what its
// Content-Security-Policy must let it connect to.
func (s *S3) URLOrigin() string { return s.origin }

// URLSource is the narrowest CSP source the store's URLs match: the
// origin in virtual-host style (the bucket is in the host), the origin and
// "/bucket/" in path style, so a page may send requests to this bucket and
// not to every bucket of the host.
func (s *S3) URLSource() string { return s.source }

// newMinio returns a client for endpoint, which is host:port or a URL.
func newMinio(endpoint string, cfg S3Config) (*minio.Client, error) {
	host, secure := endpoint, cfg.UseSSL
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("s3 store: endpoint %q: want host:port or http(s)://host:port", endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   s3Retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store: endpoint %q: %w", endpoint, err)
	}
	return c, nil
}

func (s *S3) createBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Error("check bucket", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		return s3Error("create bucket", s.bucket, err)
	}
	return nil
}

// presignExpiry clamps a URL lifetime to what SigV4 allows and returns it
// with the moment it ends.
func presignExpiry(d time.Duration) (time.Duration, time.Time) {
	if d <= 0 {
		d = URLExpiryDefault
	}
	d = max(min(d, URLExpiryMax), time.Second).Truncate(time.Second)
	return d, time.Now().UTC().Truncate(time.Second).Add(d)
}

// PresignPut returns a pre-signed PUT URL for key, signed for the public
// endpoint without a network call. See S3 for what it cannot enforce.
func (s *S3) PresignPut(ctx context.Context, key string, o PutOptions) (*SignedURL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	d, exp := presignExpiry(o.Expires)
	u, err := s.public.PresignedPutObject(ctx, s.bucket, key, d)
	if err != nil {
		return nil, s3Error("presign upload of", key, err)
	}
	su := &SignedURL{URL: u.String(), Method: "PUT", Headers: map[string]string{}, ExpiresAt: exp}
	if o.ContentType != "" {
		// Not signed: a client that leaves it out still uploads.
		su.Headers["Content-Type"] = o.ContentType
	}
	return su, nil
}

// PresignGet returns a pre-signed GET URL for key whose response carries a
// Content-Disposition naming o.FileName (the key's last segment if empty).
func (s *S3) PresignGet(ctx context.Context, key string, o GetOptions) (*SignedURL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	name := o.FileName
	if name == "" {
		name = path.Base(key)
	}
	d, exp := presignExpiry(o.Expires)
	params := url.Values{"response-content-disposition": {ContentDisposition(name)}}
	u, err := s.public.PresignedGetObject(ctx, s.bucket, key, d, params)
	if err != nil {
		return nil, s3Error("presign download of", key, err)
	}
	return &SignedURL{URL: u.String(), Method: "GET", Headers: map[string]string{}, ExpiresAt: exp}, nil
}

// Stat asks the store (HEAD) for key's size, time and ETag, or ENOTFOUND.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s3Error("stat", key, err)
	}
	return Info{Key: key, Size: oi.Size, LastModified: oi.LastModified.UTC(), ETag: strings.Trim(oi.ETag, `"`)}, nil
}

// Open streams key from the store, or returns ENOTFOUND.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Error("open", key, err)
	}
	// GetObject is lazy; Stat sends the request, so a missing key is
	// reported here rather than at the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s3Error("open", key, err)
	}
	return obj, nil
}

// Create streams a new object as a multipart upload: what is written goes
// through a pipe into parts of PartSize bytes, so memory stays at one part
// whatever the object's size. Close completes the upload; Abort cancels it
// and nothing is stored.
func (s *S3) Create(ctx context.Context, key, contentType string) (Writer, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	w := &s3Writer{key: key, pw: pw, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_, err := s.client.PutObject(ctx, s.bucket, key, pr, -1, minio.PutObjectOptions{ContentType: contentType, PartSize: s.partSize})
		// Unblock a writer still writing into a failed upload.
		pr.CloseWithError(cmpErr(err, errUploadEnded))
		w.err = err
	}()
	return w, nil
}

var (
	errUploadEnded = errors.New("object upload ended")
	errAborted     = errors.New("object upload aborted")
)

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// s3Writer feeds a PutObject running in its own goroutine.
type s3Writer struct {
	key    string
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
	once   sync.Once
}

func (w *s3Writer) Write(p []byte) (int, error) {
	n, err := w.pw.Write(p)
	if err != nil {
		return n, s3Error("write", w.key, err)
	}
	return n, nil
}

// Close ends the stream and waits for the upload to complete.
func (w *s3Writer) Close() error {
	closed := false
	w.once.Do(func() { closed = true; w.pw.Close() })
	if !closed {
		return errors.New("object writer already closed")
	}
	<-w.done
	w.cancel()
	if w.err != nil {
		return s3Error("upload", w.key, w.err)
	}
	return nil
}

// Abort cancels the upload; the parts sent so far are discarded.
func (w *s3Writer) Abort() error {
	w.once.Do(func() {
		w.pw.CloseWithError(errAborted)
		w.cancel()
	})
	<-w.done
	return nil
}

// DeletePrefix deletes every object under prefix, listing and deleting in
// batches (up to 1,000 keys a request). An empty prefix is refused.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listErr error
	keys := make(chan minio.ObjectInfo)
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		defer close(keys)
		for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			select {
			case keys <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	var err error
	for e := range s.client.RemoveObjects(ctx, s.bucket, keys, minio.RemoveObjectsOptions{}) {
		if err == nil && e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
			err = s3Error("delete", e.ObjectName, e.Err)
		}
	}
	cancel()
	<-listed
	if listErr != nil && err == nil {
		err = s3Error("list prefix", prefix, listErr)
	}
	return err
}

// Check reports whether the store answers and the bucket exists.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Error("check bucket", s.bucket, err)
	}
	if !ok {
		return commonops.Errorf(commonops.EUNAVAILABLE, "the storage bucket %s does not exist", s.bucket)
	}
	return nil
}

// s3Error translates an error of the S3 client once: a missing object is
// ENOTFOUND; a store that cannot be reached, fails (5xx), refuses our
// credentials or lost its bucket is EUNAVAILABLE.
func s3Error(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	var netErr net.Error
	switch {
	case resp.Code == "NoSuchKey" || resp.StatusCode == 404 && resp.Code != "NoSuchBucket":
		return &commonops.Error{Code: commonops.ENOTFOUND, Message: "no object " + key, Err: err}
	case resp.Code == "NoSuchBucket":
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the storage bucket does not exist", Err: err}
	case errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded),
		resp.StatusCode >= 500, resp.StatusCode == 403:
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the object store is unavailable", Err: fmt.Errorf("%s %s: %w", op, key, err)}
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}
