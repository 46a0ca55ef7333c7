package objectstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/commonops/commonops"
)

// Local store defaults.
const (
	// LocalDirDefault is where the local store keeps files.
	LocalDirDefault = "./data/files"
	// MaxSizeDefault is the largest file the local store accepts (5 GiB,
	// the same as a single pre-signed PUT on S3).
	MaxSizeDefault int64 = 5 << 30
)

// secretLen is the size of a generated HMAC key.
const secretLen = 32

// tempPrefix starts the name of a file being written; it is renamed to its
// key once complete, so a reader never sees a partial object.
const tempPrefix = ".commonops-upload-"

// LocalConfig configures a local store. Zero fields take their defaults.
type LocalConfig struct {
	// Dir holds the files, one per key, in subdirectories that follow the
	// key's slashes. Defaults to LocalDirDefault.
	Dir string
	// BaseURL is the public base of the service, e.g. http://localhost:8080;
	// URLs are BaseURL+"/files/"+key+"?...". Empty gives relative URLs
	// ("/files/..."), usable only by a client of the same origin. Defaults
	// to "".
	BaseURL string
	// Secret is the HMAC key that signs URLs. If empty, one is generated and
	// kept in Dir/.secret (mode 0600), so URLs survive restarts. Defaults to
	// the key in Dir/.secret.
	Secret []byte
	// MaxSize bounds every upload, whatever its URL allows. Defaults to
	// MaxSizeDefault.
	MaxSize int64
	// AllowPut, if set, is asked whether key may still be written before a
	// PUT to a signed URL is taken and again before the file is kept: a
	// signed URL lives until it expires, but the upload it was for may be
	// over (the input confirmed, the attempt ended). An error refuses the
	// PUT, its code giving the status (ECONFLICT 409, EFORBIDDEN 403,
	// ENOTFOUND 404) and its message the detail. Defaults to nil (every
	// validly signed PUT is taken).
	AllowPut func(ctx context.Context, key string) error
	// OnUpload, if set, is called after a PUT to an input key
	// (tasks/{id}/input/{name}, see InputTaskID) is stored and before the
	// client gets its answer, with the stored object's Info, so the service
	// can confirm the upload itself. Defaults to nil (nothing is called).
	OnUpload func(ctx context.Context, info Info)
	// MaxConcurrentUploads bounds the PUTs the handler takes at once; one
	// more is answered 503 with Retry-After. A second PUT to a key that is
	// being uploaded is answered 409 whatever this bound. Defaults to
	// MaxConcurrentUploadsDefault (64).
	MaxConcurrentUploads int
	// MinTransferRate is the pace, in bytes a second, an upload body or a
	// download must keep up: each byte buys 1/MinTransferRate seconds, and
	// a transfer that falls TransferGrace behind is cut off (an upload with
	// 408, its partial file removed). Negative: no minimum. Defaults to
	// MinTransferRateDefault (1 KiB/s).
	MinTransferRate int64
	// TransferGrace is how long a transfer may go without its bytes: the
	// time the first bytes of a body have to arrive, and the most a
	// transfer may fall behind or run ahead of MinTransferRate. Defaults to
	// TransferGraceDefault (10s).
	TransferGrace time.Duration
	// Now is the clock that dates and checks URLs. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the failures the handler cannot return to anyone.
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// Local keeps files in a directory and serves them through Handler at
// URLs signed with HMAC-SHA256 and an expiry. Every file access goes
// through an os.Root, so no key, link or race can reach outside Dir.
type Local struct {
	root     *os.Root
	dir      string
	base     string
	secret   []byte
	maxSize  int64
	allowPut func(ctx context.Context, key string) error
	onUpload func(ctx context.Context, info Info)
	now      func() time.Time
	log      *slog.Logger
	slots    *uploadSlots
	rate     int64
	grace    time.Duration
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating if needed) the directory of a local store and
// loads or generates its secret.
func NewLocal(cfg LocalConfig) (*Local, error) {
	l := &Local{
		dir:      cfg.Dir,
		base:     strings.TrimSuffix(cfg.BaseURL, "/"),
		maxSize:  cfg.MaxSize,
		allowPut: cfg.AllowPut,
		onUpload: cfg.OnUpload,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	if l.dir == "" {
		l.dir = LocalDirDefault
	}
	if l.maxSize <= 0 {
		l.maxSize = MaxSizeDefault
	}
	if l.now == nil {
		l.now = time.Now
	}
	maxUploads := cfg.MaxConcurrentUploads
	if maxUploads <= 0 {
		maxUploads = MaxConcurrentUploadsDefault
	}
	l.slots = newUploadSlots(maxUploads)
	switch l.rate, l.grace = cfg.MinTransferRate, cfg.TransferGrace; {
	case l.rate == 0:
		l.rate = MinTransferRateDefault
	case l.rate < 0:
		l.rate = 0
	}
	if l.grace <= 0 {
		l.grace = TransferGraceDefault
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create local store directory %s: %w", l.dir, err)
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, fmt.Errorf("open local store directory %s: %w", l.dir, err)
	}
	l.root = root
	l.secret = cfg.Secret
	if len(l.secret) == 0 {
		if l.secret, err = l.loadSecret(); err != nil {
			root.Close()
			return nil, err
		}
	}
	return l, nil
}

// Close releases the directory handle.
func (l *Local) Close() error { return l.root.Close() }

// loadSecret reads Dir/.secret, or creates it with a random key. The key is
// written to a temporary file and linked into place, so two processes
// starting at once agree on one key and neither reads a half-written file.
func (l *Local) loadSecret() ([]byte, error) {
	b, err := l.root.ReadFile(secretName)
	if err == nil {
		if len(b) < secretLen {
			return nil, fmt.Errorf("local store secret %s: has %d bytes, want at least %d", path.Join(l.dir, secretName), len(b), secretLen)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read local store secret: %w", err)
	}
	b = make([]byte, secretLen)
	rand.Read(b)
	tmp := tempPrefix + hex.EncodeToString(b[:8]) + ".secret"
	if err := l.root.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("write local store secret: %w", err)
	}
	defer l.root.Remove(tmp)
	if err := l.root.Link(tmp, secretName); errors.Is(err, fs.ErrExist) {
		return l.loadSecret()
	} else if err != nil {
		return nil, fmt.Errorf("save local store secret: %w", err)
	}
	return b, nil
}

// expiry returns when a URL asked to live d expires, to the second.
func (l *Local) expiry(d time.Duration) time.Time {
	if d <= 0 {
		d = URLExpiryDefault
	}
	return time.Unix(l.now().Add(min(d, URLExpiryMax)).Unix(), 0).UTC()
}

// PresignPut returns a URL that streams an upload of key to disk. The URL
// carries the smaller of o.MaxSize and the store's MaxSize, and the handler
// refuses (413) a body that grows past it.
func (l *Local) PresignPut(_ context.Context, key string, o PutOptions) (*SignedURL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	limit := l.maxSize
	if o.MaxSize > 0 {
		limit = min(limit, o.MaxSize)
	}
	exp := l.expiry(o.Expires)
	u := &SignedURL{URL: l.signedURL("PUT", key, exp.Unix(), limit, ""), Method: "PUT", Headers: map[string]string{}, ExpiresAt: exp}
	if o.ContentType != "" {
		u.Headers["Content-Type"] = o.ContentType
	}
	return u, nil
}

// PresignGet returns a URL that downloads key as an attachment named
// o.FileName (the key's last segment when empty).
func (l *Local) PresignGet(_ context.Context, key string, o GetOptions) (*SignedURL, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	exp := l.expiry(o.Expires)
	return &SignedURL{URL: l.signedURL("GET", key, exp.Unix(), 0, o.FileName), Method: "GET", Headers: map[string]string{}, ExpiresAt: exp}, nil
}

// Stat returns the size and time of key, or ENOTFOUND.
func (l *Local) Stat(_ context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	fi, err := l.root.Stat(key)
	if err != nil {
		return Info{}, readError("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, notFound(key)
	}
	return localInfo(key, fi), nil
}

// localInfo describes the file of key. Its ETag is the size and the
// modification time to the nanosecond: a file is replaced whole (a new
// temporary file renamed over it), so a rewrite changes the time.
func localInfo(key string, fi fs.FileInfo) Info {
	mt := fi.ModTime()
	return Info{Key: key, Size: fi.Size(), LastModified: mt.UTC(), ETag: strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(mt.UnixNano(), 16)}
}

// Open streams key from disk, or returns ENOTFOUND.
func (l *Local) Open(_ context.Context, key string) (io.ReadCloser, error) {
	f, _, err := l.open(key)
	return f, err
}

func (l *Local) open(key string) (*os.File, fs.FileInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, err
	}
	f, err := l.root.Open(key)
	if err != nil {
		return nil, nil, readError("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, notFound(key)
	}
	return f, fi, nil
}

// Create starts writing key to a temporary file beside it; Close syncs and
// renames it into place, so the object appears whole or not at all.
func (l *Local) Create(_ context.Context, key, _ string) (Writer, error) {
	return l.create(key)
}

func (l *Local) create(key string) (*localWriter, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	dir := path.Dir(key)
	if err := l.root.MkdirAll(dir, 0o750); err != nil {
		return nil, writeError("create directory for", key, err)
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, writeError("create", key, err)
	}
	return &localWriter{root: l.root, f: f, tmp: tmp, key: key}, nil
}

// DeletePrefix deletes every file whose key starts with prefix (a whole
// directory for a prefix that ends in "/"). An empty prefix is refused.
func (l *Local) DeletePrefix(_ context.Context, prefix string) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	dir, base := path.Split(prefix)
	if base == "" {
		// "a/b/" names what is under directory a/b, not a file a/b.
		dir = strings.TrimSuffix(dir, "/")
		fi, err := l.root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || err == nil && !fi.IsDir() {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete prefix %s: %w", prefix, err)
		}
		if err := l.root.RemoveAll(dir); err != nil {
			return fmt.Errorf("delete prefix %s: %w", prefix, err)
		}
		return nil
	}
	if dir == "" {
		dir = "."
	}
	d, err := l.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete prefix %s: %w", prefix, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("delete prefix %s: %w", prefix, err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, base) && (dir != "." || name != secretName) {
			if err := l.root.RemoveAll(path.Join(dir, name)); err != nil {
				return fmt.Errorf("delete prefix %s: %w", prefix, err)
			}
		}
	}
	return nil
}

// Check reports whether the directory is still there.
func (l *Local) Check(context.Context) error {
	if _, err := l.root.Stat("."); err != nil {
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the local file store is unavailable", Err: err}
	}
	return nil
}

// localWriter is an object being written to a temporary file.
type localWriter struct {
	root *os.Root
	f    *os.File
	tmp  string
	key  string
	done bool
}

func (w *localWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// Close syncs the file, renames it to its key and syncs the directory, so
// an object that was answered as stored survives a crash.
func (w *localWriter) Close() error {
	if w.done {
		return errors.New("object writer already closed")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(w.tmp, w.key)
	}
	if err != nil {
		w.root.Remove(w.tmp)
		return writeError("store", w.key, err)
	}
	if d, err := w.root.Open(path.Dir(w.key)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards what was written.
func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := w.root.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discard partial %s: %w", w.key, err)
	}
	return nil
}

func notFound(key string) error {
	return commonops.Errorf(commonops.ENOTFOUND, "no object %s", key)
}

// readError translates a file-system error met reading key.
func readError(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return &commonops.Error{Code: commonops.ENOTFOUND, Message: "no object " + key, Err: err}
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// writeError translates a file-system error met writing key: a key whose
// path runs into another object (a file where a directory must be, or the
// reverse) is a conflict, a full disk is unavailability.
func writeError(op, key string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, fs.ErrExist), errors.Is(err, syscall.ENOTEMPTY):
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("object key %s collides with the path of another object", key), Err: err}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the local file store is full", Err: err}
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}
