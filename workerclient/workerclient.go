// Package workerclient is a small Go SDK for remote workers: services that
// run commonops tasks outside the commonops process and talk to it over the
// worker API (docs/design.md §3). It needs only the standard library.
//
// The life of one attempt:
//
//	c := workerclient.New("http://commonops:8080", workerclient.WithTenant("acme"))
//	t, err := c.Claim(ctx, taskID, "importer-1", 30*time.Second) // 409 → someone else has it
//	_, err = c.Progress(ctx, t.ID, t.Attempt, commonops.Progress{ProcessedItems: &n}) // renews the lease
//	if errors.Is(err, workerclient.ErrCancelled) { stop }
//	u, err := c.OutputURL(ctx, t.ID, t.Attempt, "result.csv", "text/csv")
//	err = c.Upload(ctx, u, file)
//	_, err = c.Complete(ctx, t.ID, t.Attempt, commonops.Progress{OutputFileName: &name})
//
// Every write carries the attempt: once the lease lapsed and the task moved
// on, the server refuses it with 409 (an *Error with Status 409).
package workerclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/commonops/commonops"
)

// Prefix is the path of the task API under the server's base URL.
const Prefix = "/api/v1/operations"

// ErrCancelled is returned (wrapped) by the worker writes when the task was
// cancelled: the worker must stop and write nothing more.
var ErrCancelled = errors.New("task cancelled")

// Error is an error answer of the server: its status and its RFC 9457
// problem document.
type Error struct {
	StatusCode int
	Type       string                 `json:"type"`
	Title      string                 `json:"title"`
	Status     int                    `json:"status"`
	Detail     string                 `json:"detail"`
	RequestID  string                 `json:"requestId"`
	Errors     []commonops.FieldError `json:"errors"`
	// CurrentStatus and CancelRequested describe the task a 409 refers to.
	CurrentStatus   *commonops.Status `json:"currentStatus"`
	CancelRequested *bool             `json:"cancelRequested"`
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	for _, f := range e.Errors {
		msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
	}
	return fmt.Sprintf("commonops: %d %s", e.StatusCode, msg)
}

// Is makes errors.Is(err, ErrCancelled) true for a 409 about a cancelled
// task.
func (e *Error) Is(target error) bool {
	return target == ErrCancelled && e.cancelled()
}

func (e *Error) cancelled() bool {
	return e.StatusCode == http.StatusConflict &&
		((e.CancelRequested != nil && *e.CancelRequested) || (e.CurrentStatus != nil && *e.CurrentStatus == commonops.StatusCancelled))
}

// IsConflict reports whether err is a 409: the task is not in a state that
// takes the call (not claimable, cancelled, or a stale attempt).
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusConflict
}

// Client calls one commonops server. It is safe for concurrent use.
type Client struct {
	base    string
	http    *http.Client
	headers http.Header
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client. Defaults to a client with a 30s
// timeout.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTenant sends X-Tenant-Id, the tenant whose tasks the worker runs.
// Defaults to the server's default tenant.
func WithTenant(tenant string) Option { return WithHeader("X-Tenant-Id", tenant) }

// WithHeader adds a header to every API request (an Authorization header,
// for example). It is not sent on uploads to pre-signed URLs.
func WithHeader(key, value string) Option { return func(c *Client) { c.headers.Set(key, value) } }

// New returns a client of the server at baseURL (its origin, plus any path it
// is mounted under; the client adds Prefix).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/") + Prefix,
		http:    &http.Client{Timeout: 30 * time.Second},
		headers: make(http.Header),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Get returns a task.
func (c *Client) Get(ctx context.Context, taskID string) (*commonops.Task, error) {
	var t commonops.Task
	if err := c.do(ctx, http.MethodGet, taskPath(taskID, ""), nil, &t); err != nil {
		return nil, fmt.Errorf("get task %s: %w", taskID, err)
	}
	return &t, nil
}

// Pending lists up to limit pending tasks of taskType and entityType (""
// for any), oldest first, for a worker that polls. A listed task may be
// claimed by someone else before this worker's Claim: that Claim answers 409.
func (c *Client) Pending(ctx context.Context, taskType, entityType string, limit int) ([]*commonops.Task, error) {
	q := url.Values{"status": {string(commonops.StatusPending)}, "sort": {"createdAt"}, "pageSize": {fmt.Sprint(max(limit, 1))}}
	if taskType != "" {
		q.Set("taskType", taskType)
	}
	if entityType != "" {
		q.Set("entityType", entityType)
	}
	var page struct {
		Tasks []*commonops.Task `json:"tasks"`
	}
	if err := c.do(ctx, http.MethodGet, "/tasks?"+q.Encode(), nil, &page); err != nil {
		return nil, fmt.Errorf("list pending tasks: %w", err)
	}
	return page.Tasks, nil
}

// Claim takes a pending task for workerID with a lease (0 for the server's
// default; whole seconds). The answer is the task, processing on its new
// attempt, which every later call must carry. A task that is not claimable
// answers a 409 *Error (see IsConflict).
func (c *Client) Claim(ctx context.Context, taskID, workerID string, lease time.Duration) (*commonops.Task, error) {
	body := map[string]any{"workerId": workerID, "leaseSeconds": int((lease + time.Second - 1) / time.Second)}
	var t commonops.Task
	if err := c.do(ctx, http.MethodPost, taskPath(taskID, "/claim"), body, &t); err != nil {
		return nil, fmt.Errorf("claim task %s: %w", taskID, err)
	}
	return &t, nil
}

// Progress reports counts, progress, a message or a checkpoint for attempt,
// and renews the lease. When the task was cancelled it returns the task (if
// the server sent it) and an error that matches ErrCancelled.
func (c *Client) Progress(ctx context.Context, taskID string, attempt int, p commonops.Progress) (*commonops.Task, error) {
	p.Attempt = &attempt
	var t commonops.Task
	if err := c.do(ctx, http.MethodPatch, taskPath(taskID, "/progress"), p, &t); err != nil {
		return nil, fmt.Errorf("report progress of task %s: %w", taskID, err)
	}
	if t.CancelRequested || t.Status == commonops.StatusCancelled {
		return &t, fmt.Errorf("report progress of task %s: %w", taskID, ErrCancelled)
	}
	return &t, nil
}

// Heartbeat renews the lease of attempt without reporting anything.
func (c *Client) Heartbeat(ctx context.Context, taskID string, attempt int) (*commonops.Task, error) {
	return c.Progress(ctx, taskID, attempt, commonops.Progress{})
}

// Complete ends attempt successfully, with a last report (counts, message,
// outputFileName) in the same call.
func (c *Client) Complete(ctx context.Context, taskID string, attempt int, last commonops.Progress) (*commonops.Task, error) {
	st := commonops.StatusCompleted
	last.Status = &st
	return c.Progress(ctx, taskID, attempt, last)
}

// Fail ends attempt with message. The server retries the task with backoff
// while retries remain, unless permanent.
func (c *Client) Fail(ctx context.Context, taskID string, attempt int, message string, permanent bool) (*commonops.Task, error) {
	st := commonops.StatusFailed
	return c.Progress(ctx, taskID, attempt, commonops.Progress{Status: &st, ErrorMessage: &message, Permanent: permanent})
}

// LogLine is one line sent to a task's log. Details is any JSON value.
type LogLine struct {
	Level   commonops.LogLevel `json:"level"`
	Message string             `json:"message"`
	Details any                `json:"details,omitempty"`
}

// Logs appends lines to the task's log for attempt.
func (c *Client) Logs(ctx context.Context, taskID string, attempt int, lines ...LogLine) error {
	body := struct {
		Attempt int       `json:"attempt"`
		Logs    []LogLine `json:"logs"`
	}{attempt, lines}
	if err := c.do(ctx, http.MethodPost, taskPath(taskID, "/logs"), body, nil); err != nil {
		return fmt.Errorf("append logs of task %s: %w", taskID, err)
	}
	return nil
}

// UploadURL is where and how to upload an output file.
type UploadURL struct {
	URL       string            `json:"uploadUrl"`
	Method    string            `json:"uploadMethod"`
	Headers   map[string]string `json:"uploadHeaders"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// OutputURL returns a pre-signed URL to upload the output file of attempt
// to. Report the name as outputFileName (in Progress or Complete) once the
// upload is done.
func (c *Client) OutputURL(ctx context.Context, taskID string, attempt int, fileName, contentType string) (*UploadURL, error) {
	body := map[string]any{"attempt": attempt, "fileName": fileName, "contentType": contentType}
	var u UploadURL
	if err := c.do(ctx, http.MethodPost, taskPath(taskID, "/output-url"), body, &u); err != nil {
		return nil, fmt.Errorf("get output URL of task %s: %w", taskID, err)
	}
	return &u, nil
}

// Upload sends body to a pre-signed URL with its method and headers. S3
// needs the length: give a *bytes.Reader, *bytes.Buffer, *strings.Reader or
// *os.File; another reader is sent chunked, which the local store takes.
func (c *Client) Upload(ctx context.Context, u *UploadURL, body io.Reader) error {
	method := u.Method
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, u.URL, body)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if f, ok := body.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			req.ContentLength = st.Size()
		}
	}
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload: %w", DecodeError(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// DownloadURL returns a pre-signed URL of one of the task's files: "input",
// "output" or "errors".
func (c *Client) DownloadURL(ctx context.Context, taskID, file string) (string, error) {
	var d struct {
		DownloadURL string `json:"downloadUrl"`
	}
	if err := c.do(ctx, http.MethodGet, taskPath(taskID, "/download?file="+url.QueryEscape(file)), nil, &d); err != nil {
		return "", fmt.Errorf("get %s download URL of task %s: %w", file, taskID, err)
	}
	return d.DownloadURL, nil
}

func taskPath(id, suffix string) string { return "/tasks/" + url.PathEscape(id) + suffix }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	return ReadAnswer(resp, out)
}

// ReadAnswer reads a JSON answer into out (nil discards it) and closes its
// body; a non-2xx answer is an *Error (see DecodeError). The task API's
// client (package taskclient) reads its answers with it too.
func ReadAnswer(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return DecodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// DecodeError reads an error answer into an *Error: its problem document,
// or the start of a body of another kind.
func DecodeError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ct := resp.Header.Get("Content-Type")
	if strings.Contains(ct, "json") {
		_ = json.Unmarshal(b, e)
	} else if len(b) > 0 {
		e.Detail = strings.TrimSpace(string(b))
		if len(e.Detail) > 512 {
			e.Detail = e.Detail[:512]
		}
	}
	e.StatusCode = resp.StatusCode
	return e
}
