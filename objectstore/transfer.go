package objectstore

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Limits on the transfers the local store's handler serves, so that slow
// or idle clients cost little and cannot pile up (docs/design.md §4).
const (
	// MaxConcurrentUploadsDefault is how many PUTs one process takes at
	// once; one more is answered 503 with Retry-After.
	MaxConcurrentUploadsDefault = 64
	// MinTransferRateDefault is the pace, in bytes a second, an upload body
	// or a download must keep up: 1 KiB/s.
	MinTransferRateDefault int64 = 1 << 10
	// TransferGraceDefault is how far a transfer may fall behind
	// MinTransferRate (at its start: how long before the first bytes must
	// flow) before it is cut off.
	TransferGraceDefault = 10 * time.Second
)

// retryAfter is the Retry-After, in seconds, of a PUT refused because the
// process is at MaxConcurrentUploads.
const retryAfter = "5"

// downloadChunk is how much of a download is sent under one write
// deadline: at MinTransferRateDefault, a chunk may take 64 s.
const downloadChunk = 64 << 10

// copyBufs holds the buffers uploads are copied through: 1 MiB each, large
// enough that a fast disk and loopback run at full speed. An upload takes
// one only when its first bytes have arrived, so an idle client holds none,
// and at most MaxConcurrentUploads are out at once.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// pace holds a transfer to a minimum rate through the connection's
// deadlines: each byte moved buys 1/rate seconds, and the deadline is never
// more than grace ahead of now. A client that keeps up the rate is never
// cut off; one that stalls is cut off within grace, one that crawls once it
// has fallen grace behind.
type pace struct {
	set      func(time.Time) error // the connection's read or write deadline
	rate     int64                 // bytes a second; 0 turns pacing off
	grace    time.Duration
	deadline time.Time
}

// start gives the transfer its first grace. A connection whose deadlines
// cannot be set (ErrNotSupported) is not paced.
func (p *pace) start() {
	if p.rate <= 0 {
		return
	}
	p.deadline = time.Now().Add(p.grace)
	if err := p.set(p.deadline); err != nil {
		p.rate = 0
	}
}

// moved credits n bytes transferred.
func (p *pace) moved(n int) {
	if p.rate <= 0 || n <= 0 {
		return
	}
	d := p.deadline.Add(time.Duration(int64(n) * int64(time.Second) / p.rate))
	if limit := time.Now().Add(p.grace); d.After(limit) {
		d = limit
	}
	p.deadline = d
	p.set(d)
}

// expect allows n more bytes before the next deadline, whatever credit the
// transfer has: a chunk written at once must not be cut short of the time
// it takes at the minimum rate.
func (p *pace) expect(n int) {
	if p.rate <= 0 {
		return
	}
	d := time.Now().Add(max(p.grace, time.Duration(int64(n)*int64(time.Second)/p.rate)))
	p.deadline = d
	p.set(d)
}

// tooSlow reports whether err is a deadline that pace set running out.
func tooSlow(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// receive copies body to dst under p. It waits for the first byte with no
// buffer of its own; the 1 MiB copy buffer is taken only once data flows.
func receive(dst io.Writer, body io.Reader, p *pace) (int64, error) {
	p.start()
	var first [1]byte
	for {
		n, err := body.Read(first[:])
		if n == 1 {
			break
		}
		if err == io.EOF {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
	}
	p.moved(1)
	if _, err := dst.Write(first[:]); err != nil {
		return 0, err
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	total := int64(1)
	for {
		n, err := body.Read(*buf)
		if n > 0 {
			p.moved(n)
			if _, werr := dst.Write((*buf)[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// pacedWriter is a download's ResponseWriter under a write pace. ReadFrom
// sends a file in chunks of downloadChunk, each through the server's own
// ReadFrom (sendfile on a plain connection) under a deadline of its own.
type pacedWriter struct {
	http.ResponseWriter
	p *pace
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	w.p.expect(len(b))
	return w.ResponseWriter.Write(b)
}

func (w *pacedWriter) ReadFrom(r io.Reader) (int64, error) {
	src, left := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		// One level of LimitedReader over the file, as sendfile needs.
		src, left = lr.R, lr.N
	}
	var total int64
	for left != 0 {
		chunk := int64(downloadChunk)
		if left > 0 {
			chunk = min(chunk, left)
		}
		w.p.expect(int(chunk))
		n, err := io.Copy(w.ResponseWriter, io.LimitReader(src, chunk))
		total += n
		if left > 0 {
			left -= n
		}
		if err != nil {
			return total, err
		}
		if n < chunk {
			break // the source ended
		}
	}
	if lr, ok := r.(*io.LimitedReader); ok {
		lr.N = left
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// uploadSlots bounds the uploads in flight: at most one per key, at most
// max in the process.
type uploadSlots struct {
	process chan struct{}
	mu      sync.Mutex
	keys    map[string]struct{}
}

func newUploadSlots(max int) *uploadSlots {
	return &uploadSlots{process: make(chan struct{}, max), keys: map[string]struct{}{}}
}

// take claims a slot for key: ok, or the status and detail of the refusal.
// A taken slot is given back with give.
func (s *uploadSlots) take(key string) (status int, detail string) {
	select {
	case s.process <- struct{}{}:
	default:
		return http.StatusServiceUnavailable, "the server is taking as many uploads as it can: retry later"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.keys[key]; busy {
		<-s.process
		return http.StatusConflict, "an upload of this file is already in progress"
	}
	s.keys[key] = struct{}{}
	return 0, ""
}

func (s *uploadSlots) give(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
	<-s.process
}
