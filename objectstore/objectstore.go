// Package objectstore keeps task files: a local directory served by
// commonops through HMAC-signed, expiring URLs (the embedded default), and any
// S3-compatible store through pre-signed URLs. Both sit behind Store.
//
// Keys follow docs/design.md §4: tasks/{id}/input/{fileName},
// tasks/{id}/output/{fileName} (written by the service),
// tasks/{id}/output-{attempt}/{fileName} (uploaded through the URL of one
// attempt) and tasks/{id}/errors.csv. The functions below are the only place
// that builds them; ParseKey reads them back.
package objectstore

import (
	"context"
	"io"
	"time"
)

// URL lifetimes: upload and download URLs expire after URLExpiryDefault;
// no URL lives longer than URLExpiryMax (the SigV4 limit).
const (
	URLExpiryDefault = 15 * time.Minute
	URLExpiryMax     = 7 * 24 * time.Hour
)

// Store is a place for task files. Methods return *commonops.Error with
// ENOTFOUND for a missing object and EUNAVAILABLE when the store is down.
type Store interface {
	// PresignPut returns a URL a client can upload key to, without passing
	// through the API process (S3) or streamed to disk (local).
	PresignPut(ctx context.Context, key string, o PutOptions) (*SignedURL, error)
	// PresignGet returns a URL that downloads key, named o.FileName.
	PresignGet(ctx context.Context, key string, o GetOptions) (*SignedURL, error)
	// Stat returns the object's size and time, or ENOTFOUND.
	Stat(ctx context.Context, key string) (Info, error)
	// Open streams the object.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Create streams a new object with constant memory (multipart on S3).
	// Close commits it; Abort discards it.
	Create(ctx context.Context, key, contentType string) (Writer, error)
	// DeletePrefix deletes every object under prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	// Check reports whether the store answers (for /health).
	Check(ctx context.Context) error
}

// Writer is an object being written. Exactly one of Close or Abort ends it.
type Writer interface {
	io.WriteCloser
	Abort() error
}

// PutOptions shape an upload URL.
type PutOptions struct {
	ContentType string
	// MaxSize is the largest object the URL accepts, where the store can
	// enforce it (local store: while streaming). Zero for no limit.
	MaxSize int64
	// Expires is the URL's lifetime. Defaults to URLExpiryDefault.
	Expires time.Duration
}

// GetOptions shape a download URL.
type GetOptions struct {
	// FileName is the name the browser saves the file under
	// (Content-Disposition).
	FileName string
	// Expires is the URL's lifetime. Defaults to URLExpiryDefault.
	Expires time.Duration
}

// SignedURL is a URL handed to a client, with the method and headers the
// request must use.
type SignedURL struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// Info describes a stored object.
type Info struct {
	Key          string
	Size         int64
	LastModified time.Time
	// ETag changes whenever the object is written again, so a caller that
	// recorded it can tell the object it confirmed from a later overwrite:
	// the S3 ETag, or on the local store the file's size and modification
	// time in nanoseconds.
	ETag string
}
