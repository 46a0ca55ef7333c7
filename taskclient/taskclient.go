// Package taskclient is a small Go client of the commonops task API for the
// people and programs that submit and follow tasks (docs/design.md §3): it
// creates tasks and uploads their input through the pre-signed URL, lists,
// reads, cancels, retries and deletes them, downloads their files, pages
// their logs and follows their event stream. The `commonops task` commands
// are built on it. Remote workers use workerclient; both answer an API
// problem with a *workerclient.Error.
//
//	c := taskclient.New("http://localhost:8080", taskclient.WithToken(token))
//	created, err := c.Create(ctx, commonops.CreateInput{TaskType: "noop", EntityType: "demo"}, "")
//	status, err := c.Follow(ctx, created.Task.ID, 0, func(e commonops.Event) error { ...; return nil })
package taskclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/workerclient"
)

// Client calls one commonops server. It is safe for concurrent use.
type Client struct {
	base    string
	http    *http.Client // API calls
	stream  *http.Client // event streams and file transfers: no overall timeout
	headers http.Header
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the client of the API calls. Defaults to a client
// with a 30s timeout. Event streams and file transfers use its transport
// without a timeout.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		c.http = h
		c.stream = &http.Client{Transport: h.Transport}
	}
}

// WithToken sends token as "Authorization: Bearer" on every API request
// (never to a pre-signed URL). An empty token sends nothing.
func WithToken(token string) Option {
	return func(c *Client) {
		if token != "" {
			c.headers.Set("Authorization", "Bearer "+token)
		}
	}
}

// WithTenant sends X-Tenant-Id: the tenant to act in, for the none mode or
// a platform admin. An empty tenant sends nothing.
func WithTenant(tenant string) Option {
	return func(c *Client) {
		if tenant != "" {
			c.headers.Set("X-Tenant-Id", tenant)
		}
	}
}

// WithHeader adds a header to every API request.
func WithHeader(key, value string) Option { return func(c *Client) { c.headers.Set(key, value) } }

// New returns a client of the server at baseURL (its origin, plus any path
// it is mounted under; the client adds workerclient.Prefix).
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/") + workerclient.Prefix,
		http:    &http.Client{Timeout: 30 * time.Second},
		stream:  &http.Client{},
		headers: make(http.Header),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Created is the answer to a create: the task and, when it has an input
// file, where and how to upload it.
type Created struct {
	Task            commonops.Task    `json:"task"`
	UploadURL       string            `json:"uploadUrl,omitempty"`
	UploadMethod    string            `json:"uploadMethod,omitempty"`
	UploadHeaders   map[string]string `json:"uploadHeaders,omitempty"`
	UploadExpiresAt *time.Time        `json:"uploadExpiresAt,omitempty"`
}

// Create creates a task. A non-empty idempotencyKey makes a repeated create
// (same key, same input) return the first answer instead of a second task.
func (c *Client) Create(ctx context.Context, in commonops.CreateInput, idempotencyKey string) (*Created, error) {
	var h http.Header
	if idempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var out Created
	if err := c.do(ctx, http.MethodPost, "/tasks", h, in, &out); err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	return &out, nil
}

// BatchItem is one create of CreateBatch, with its own idempotency key.
type BatchItem struct {
	commonops.CreateInput
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// BatchResult is the answer to one item: a task id (with where to upload
// the input of a task with a file), or the item's Problem.
type BatchResult struct {
	Status          int                 `json:"status"`
	ID              string              `json:"id,omitempty"`
	Replayed        bool                `json:"replayed,omitempty"`
	UploadURL       string              `json:"uploadUrl,omitempty"`
	UploadMethod    string              `json:"uploadMethod,omitempty"`
	UploadHeaders   map[string]string   `json:"uploadHeaders,omitempty"`
	UploadExpiresAt *time.Time          `json:"uploadExpiresAt,omitempty"`
	Problem         *workerclient.Error `json:"problem,omitempty"`
}

// Batch is the answer of CreateBatch: one result per item, in order.
type Batch struct {
	Results []BatchResult `json:"results"`
	Created int           `json:"created"`
	Failed  int           `json:"failed"`
}

// MaxBatch is the most items one CreateBatch takes.
const MaxBatch = 1000

// CreateBatch creates up to MaxBatch tasks in one request, stored in one
// transaction. An item the service refuses is answered with its problem
// in its result; the error is for a request refused as a whole.
func (c *Client) CreateBatch(ctx context.Context, items []BatchItem) (*Batch, error) {
	var out Batch
	if err := c.do(ctx, http.MethodPost, "/tasks/batch", nil, map[string]any{"tasks": items}, &out); err != nil {
		return nil, fmt.Errorf("create %d tasks: %w", len(items), err)
	}
	return &out, nil
}

// Upload sends size bytes of body to the created task's upload URL. The
// local store confirms the upload by itself; call ConfirmUpload after it on
// any store.
func (c *Client) Upload(ctx context.Context, created *Created, body io.Reader, size int64) error {
	if created.UploadURL == "" {
		return fmt.Errorf("upload input of task %s: the task takes no input file", created.Task.ID)
	}
	method := created.UploadMethod
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, created.UploadURL, body)
	if err != nil {
		return fmt.Errorf("upload input of task %s: %w", created.Task.ID, err)
	}
	req.ContentLength = size // S3 refuses a chunked PUT
	for k, v := range created.UploadHeaders {
		req.Header.Set(k, v)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return fmt.Errorf("upload input of task %s: %w", created.Task.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload input of task %s: %w", created.Task.ID, workerclient.DecodeError(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// ConfirmUpload tells the server the input file is uploaded; it checks the
// object and lets the task run. Calling it again is harmless.
func (c *Client) ConfirmUpload(ctx context.Context, id string) (*commonops.Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/upload-complete", "confirm upload of task")
}

// ListOptions filter and page a list; zero fields are left to the server.
type ListOptions struct {
	TaskType, EntityType, RequestedBy, Search, Sort string
	// Status is a comma list of statuses.
	Status string
	// PageSize defaults to 20 on the server (at most 1000).
	PageSize int
	// Cursor is a previous page's NextCursor.
	Cursor string
}

// Page is one page of tasks.
type Page struct {
	Tasks       []commonops.Task `json:"tasks"`
	Total       int              `json:"total"`
	TotalCapped bool             `json:"totalCapped"`
	Page        int              `json:"page"`
	PageSize    int              `json:"pageSize"`
	// NextCursor is the position of the next page; nil on the last.
	NextCursor *string `json:"nextCursor"`
}

// List returns one page of the tasks o selects, newest first unless
// o.Sort says otherwise.
func (c *Client) List(ctx context.Context, o ListOptions) (*Page, error) {
	q := url.Values{}
	for k, v := range map[string]string{"taskType": o.TaskType, "entityType": o.EntityType, "requestedBy": o.RequestedBy,
		"search": o.Search, "sort": o.Sort, "status": o.Status, "cursor": o.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(o.PageSize))
	}
	var p Page
	if err := c.do(ctx, http.MethodGet, "/tasks?"+q.Encode(), nil, nil, &p); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return &p, nil
}

// Get returns a task.
func (c *Client) Get(ctx context.Context, id string) (*commonops.Task, error) {
	return c.taskCall(ctx, http.MethodGet, id, "", "get task")
}

// Cancel cancels a task: at once when it is not running, at the worker's
// next report when it is (the answer then has CancelRequested).
func (c *Client) Cancel(ctx context.Context, id string) (*commonops.Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/cancel", "cancel task")
}

// Retry runs a failed or cancelled task again; force goes past maxRetries.
func (c *Client) Retry(ctx context.Context, id string, force bool) (*commonops.Task, error) {
	suffix := "/retry"
	if force {
		suffix += "?force=true"
	}
	return c.taskCall(ctx, http.MethodPost, id, suffix, "retry task")
}

// Delete deletes a terminal task with its logs, events and files.
func (c *Client) Delete(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodDelete, taskPath(id, ""), nil, nil, nil); err != nil {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	return nil
}

func (c *Client) taskCall(ctx context.Context, method, id, suffix, what string) (*commonops.Task, error) {
	var t commonops.Task
	if err := c.do(ctx, method, taskPath(id, suffix), nil, nil, &t); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return &t, nil
}

// File is an open download: its name, its size (-1 when unknown) and its
// bytes, which the caller closes.
type File struct {
	Name string
	Size int64
	io.ReadCloser
}

// Download opens one of the task's files, "output", "errors" or "input",
// through its signed URL.
func (c *Client) Download(ctx context.Context, id, which string) (*File, error) {
	var d struct {
		DownloadURL string `json:"downloadUrl"`
		FileName    string `json:"fileName"`
	}
	if err := c.do(ctx, http.MethodGet, taskPath(id, "/download?file="+url.QueryEscape(which)), nil, nil, &d); err != nil {
		return nil, fmt.Errorf("download %s of task %s: %w", which, id, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.DownloadURL, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s of task %s: %w", which, id, err)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s of task %s: %w", which, id, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("download %s of task %s: %w", which, id, workerclient.DecodeError(resp))
	}
	return &File{Name: d.FileName, Size: resp.ContentLength, ReadCloser: resp.Body}, nil
}

// LogOptions select a page of a task's log.
type LogOptions struct {
	// Level keeps only the lines of this level (debug, info, warn or
	// error); "" keeps every line.
	Level string
	// Page is 1-based; PageSize at most 1000. Zero leaves them to the server.
	Page, PageSize int
}

// LogPage is one page of a task's log, oldest first.
type LogPage struct {
	Logs  []commonops.LogEntry `json:"logs"`
	Total int                  `json:"total"`
}

// Logs returns one page of the task's log.
func (c *Client) Logs(ctx context.Context, id string, o LogOptions) (*LogPage, error) {
	q := url.Values{}
	if o.Level != "" {
		q.Set("level", o.Level)
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	if o.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(o.PageSize))
	}
	var p LogPage
	if err := c.do(ctx, http.MethodGet, taskPath(id, "/logs?"+q.Encode()), nil, nil, &p); err != nil {
		return nil, fmt.Errorf("logs of task %s: %w", id, err)
	}
	return &p, nil
}

// Events returns the task's events with an id above after, at most limit
// (0: the server's default, 1000).
func (c *Client) Events(ctx context.Context, id string, after int64, limit int) ([]commonops.Event, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p struct {
		Events []commonops.Event `json:"events"`
	}
	if err := c.do(ctx, http.MethodGet, taskPath(id, "/events?"+q.Encode()), nil, nil, &p); err != nil {
		return nil, fmt.Errorf("events of task %s: %w", id, err)
	}
	return p.Events, nil
}

func taskPath(id, suffix string) string { return "/tasks/" + url.PathEscape(id) + suffix }

func (c *Client) request(ctx context.Context, method, path string, header http.Header, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, header http.Header, in, out any) error {
	req, err := c.request(ctx, method, path, header, in)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	return workerclient.ReadAnswer(resp, out)
}
