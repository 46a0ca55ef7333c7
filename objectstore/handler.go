package objectstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
)

// FilesPath is where the local store's handler is mounted; a signed URL is
// BaseURL + FilesPath + key + "?" + query.
const FilesPath = "/files/"

// Query parameters of a signed URL. The signature covers the method, the key
// and every other parameter, so none can be changed.
const (
	paramExpires  = "exp" // unix seconds after which the URL is refused
	paramMax      = "max" // largest body a PUT URL accepts, in bytes
	paramMethod   = "m"   // PUT or GET (GET URLs also answer HEAD)
	paramFileName = "cd"  // download name for Content-Disposition
	paramSig      = "sig" // base64url HMAC-SHA256
)

// signedURL builds the URL for method on key.
func (l *Local) signedURL(method, key string, exp, limit int64, fileName string) string {
	v := url.Values{}
	v.Set(paramExpires, strconv.FormatInt(exp, 10))
	if limit > 0 {
		v.Set(paramMax, strconv.FormatInt(limit, 10))
	}
	v.Set(paramMethod, method)
	if fileName != "" {
		v.Set(paramFileName, fileName)
	}
	v.Set(paramSig, base64.RawURLEncoding.EncodeToString(l.sign(method, key, exp, limit, fileName)))
	return l.base + FilesPath + escapeKey(key) + "?" + v.Encode()
}

// sign is the HMAC of everything a URL grants. The file name comes last,
// and nothing before it may hold a newline, so no two grants share a text.
func (l *Local) sign(method, key string, exp, limit int64, fileName string) []byte {
	mac := hmac.New(sha256.New, l.secret)
	fmt.Fprintf(mac, "commonops-files-v1\n%s\n%s\n%d\n%d\n%s", method, key, exp, limit, fileName)
	return mac.Sum(nil)
}

// grant is what a verified URL allows.
type grant struct {
	key      string
	limit    int64
	fileName string
}

// verify checks the request's URL: a valid key, a signature over exactly
// these parameters, for this method, not expired.
func (l *Local) verify(r *http.Request, method string) (grant, int, string) {
	key, ok := strings.CutPrefix(r.URL.Path, FilesPath)
	if !ok {
		return grant{}, http.StatusNotFound, "no such path; files are served under " + FilesPath
	}
	if err := ValidateKey(key); err != nil {
		return grant{}, http.StatusBadRequest, commonops.ErrorMessage(err)
	}
	q := r.URL.Query()
	const tampered = "the URL's signature does not match: it was changed or not issued by this service"
	exp, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil {
		return grant{}, http.StatusForbidden, tampered
	}
	var limit int64
	if s := q.Get(paramMax); s != "" {
		if limit, err = strconv.ParseInt(s, 10, 64); err != nil || limit <= 0 {
			return grant{}, http.StatusForbidden, tampered
		}
	}
	if q.Get(paramMethod) != method {
		return grant{}, http.StatusForbidden, fmt.Sprintf("the URL is signed for %s, not %s", q.Get(paramMethod), r.Method)
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get(paramSig))
	if err != nil || !hmac.Equal(sig, l.sign(method, key, exp, limit, q.Get(paramFileName))) {
		return grant{}, http.StatusForbidden, tampered
	}
	if l.now().Unix() > exp {
		return grant{}, http.StatusForbidden, "the URL expired at " + time.Unix(exp, 0).UTC().Format(time.RFC3339)
	}
	return grant{key: key, limit: limit, fileName: q.Get(paramFileName)}, 0, ""
}

// Handler serves the signed URLs: PUT, GET and HEAD on /files/{key...}.
// Mount it at FilesPath without stripping the prefix. A tampered, expired or
// unsigned URL gets 403, a malformed key 400, an upload over its limit 413,
// a PUT AllowPut refuses its code's status (409 once the upload is over), a
// second PUT to a key being uploaded 409, one over MaxConcurrentUploads 503
// with Retry-After, a body slower than MinTransferRate 408, all as
// application/problem+json.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			l.servePut(w, r)
		case http.MethodGet, http.MethodHead:
			l.serveGet(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			writeProblem(w, http.StatusMethodNotAllowed, "files accept GET, HEAD and PUT")
		}
	})
}

func (l *Local) serveGet(w http.ResponseWriter, r *http.Request) {
	g, status, detail := l.verify(r, http.MethodGet)
	if status != 0 {
		writeProblem(w, status, detail)
		return
	}
	f, fi, err := l.open(g.key)
	if err != nil {
		l.writeError(w, r, err)
		return
	}
	defer f.Close()
	name := g.fileName
	if name == "" {
		name = path.Base(g.key)
	}
	ct := mime.TypeByExtension(path.Ext(g.key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", ContentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=0")
	h.Set("ETag", `"`+localInfo(g.key, fi).ETag+`"`)
	// A client that stops reading is cut off, at the write deadline of
	// the chunk it does not take.
	rc := http.NewResponseController(w)
	pw := &pacedWriter{ResponseWriter: w, p: &pace{set: rc.SetWriteDeadline, rate: l.rate, grace: l.grace}}
	pw.p.start()
	// ServeContent answers Range and conditional requests and, over a
	// plain connection, sends the file with sendfile.
	http.ServeContent(pw, r, "", fi.ModTime(), f)
}

func (l *Local) servePut(w http.ResponseWriter, r *http.Request) {
	g, status, detail := l.verify(r, http.MethodPut)
	if status != 0 {
		refuse(w, status, detail)
		return
	}
	limit := l.maxSize
	if g.limit > 0 {
		limit = min(limit, g.limit)
	}
	if r.ContentLength > limit {
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload has %d bytes, over the limit of %d", r.ContentLength, limit))
		return
	}
	if status, detail := l.slots.take(g.key); status != 0 {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfter)
		}
		refuse(w, status, detail)
		return
	}
	defer l.slots.give(g.key)
	if err := l.checkPut(r.Context(), g.key); err != nil {
		w.Header().Set("Connection", "close")
		l.writeError(w, r, err)
		endRead(w)
		return
	}
	fw, err := l.create(g.key)
	if err != nil {
		w.Header().Set("Connection", "close")
		l.writeError(w, r, err)
		endRead(w)
		return
	}
	// MaxBytesReader stops at limit+1 bytes and has the server close the
	// connection, so an oversized body without Content-Length costs at
	// most limit bytes of disk, removed at once.
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, limit)}
	rc := http.NewResponseController(w)
	_, err = receive(writerOnly{fw.f}, body, &pace{set: rc.SetReadDeadline, rate: l.rate, grace: l.grace})
	if err != nil {
		fw.Abort()
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(body.err, &tooLarge):
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload is over the limit of %d bytes", limit))
		case tooSlow(body.err):
			w.Header().Set("Connection", "close")
			writeProblem(w, http.StatusRequestTimeout, fmt.Sprintf("the upload was slower than the minimum of %d bytes a second: it was aborted and nothing was kept", l.rate))
		case body.err != nil:
			writeProblem(w, http.StatusBadRequest, "the upload was interrupted or malformed: "+body.err.Error())
		default:
			l.writeError(w, r, writeError("write", g.key, err))
		}
		return
	}
	// The upload may have ended while the body streamed (the task
	// completed, was cancelled, moved to another attempt): ask again
	// before the file replaces anything.
	if err := l.checkPut(r.Context(), g.key); err != nil {
		fw.Abort()
		l.writeError(w, r, err)
		return
	}
	if err := fw.Close(); err != nil {
		l.writeError(w, r, err)
		return
	}
	if _, ok := InputTaskID(g.key); ok && l.onUpload != nil {
		// The upload is stored whatever the client does next, so a client
		// that hangs up must not cancel its confirmation.
		ctx := context.WithoutCancel(r.Context())
		info, err := l.Stat(ctx, g.key)
		if err != nil {
			l.writeError(w, r, err)
			return
		}
		l.onUpload(ctx, info)
	}
	w.WriteHeader(http.StatusOK)
}

// checkPut asks AllowPut, if set, whether key may still be written.
func (l *Local) checkPut(ctx context.Context, key string) error {
	if l.allowPut == nil {
		return nil
	}
	return l.allowPut(ctx, key)
}

// refuse answers a PUT whose body it will not read, and closes the
// connection after the answer without waiting for that body: a client
// that sent headers and stalls holds nothing once refused.
func refuse(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Connection", "close")
	writeProblem(w, status, detail)
	endRead(w)
}

// endRead ends the reading of the request's body: once the handler
// returns, the server discards what is left of it only as far as it has
// already arrived.
func endRead(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now()) // not every writer supports it
}

// writerOnly hides the file's ReadFrom, so the copy goes through the
// buffer given.
type writerOnly struct{ io.Writer }

// bodyReader remembers the error reading a request body, to tell a bad or
// broken upload (the client's fault) from a failing disk (ours).
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// writeError answers err as a problem, logging what the client is not told.
func (l *Local) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(commonops.ErrorCode(err))
	detail := commonops.ErrorMessage(err)
	if status >= 500 {
		l.log.ErrorContext(r.Context(), "local file store", "method", r.Method, "path", r.URL.Path, "err", err)
		if status == http.StatusInternalServerError {
			detail = "the file could not be served"
		}
	}
	writeProblem(w, status, detail)
}

// statusOf maps the domain codes the file handler meets to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case commonops.EINVALID, commonops.EMALFORMED:
		return http.StatusBadRequest
	case commonops.ENOTFOUND:
		return http.StatusNotFound
	case commonops.ECONFLICT:
		return http.StatusConflict
	case commonops.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case commonops.EFORBIDDEN:
		return http.StatusForbidden
	case commonops.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	h := w.Header()
	h.Del("Content-Disposition")
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}
