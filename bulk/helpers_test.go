package bulk

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/worker"
)

// fileJob is a worker.Job over an input file and in-memory outputs: what the
// worker pool gives a processor, without the pool.
type fileJob struct {
	task  *commonops.Task
	input string // path; "" for none
	// open, when set, gives the input instead of the file at input: a
	// generated stream too big to write out.
	open func() io.Reader

	mu          sync.Mutex
	outputs     map[string][]byte // committed outputs by name
	errorsCSV   []byte            // nil until committed
	state       worker.Update     // merged reports
	logs        []string
	checkpoint  json.RawMessage
	checkpoints int
	// files are the committed report files by name; a retry shares them,
	// as attempts share the object store.
	files *sync.Map
}

func newFileJob(t *testing.T, taskType, entity, fileName, content string, params any) *fileJob {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	task := &commonops.Task{ID: "task-" + strings.ReplaceAll(t.Name(), "/", "-"), TenantID: commonops.DefaultTenant,
		TaskType: taskType, EntityType: entity, Status: commonops.StatusProcessing, Params: raw, Attempt: 1}
	j := &fileJob{task: task, outputs: map[string][]byte{}, files: &sync.Map{}}
	if fileName != "" {
		p := filepath.Join(t.TempDir(), fileName)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		size := int64(len(content))
		task.FileName, task.FileSize, j.input = &fileName, &size, p
	}
	return j
}

// retry returns the next attempt's job: same task and input, the saved
// checkpoint, fresh outputs.
func (j *fileJob) retry() *fileJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	task := j.task.Clone()
	task.Attempt++
	task.Checkpoint = j.checkpoint
	return &fileJob{task: task, input: j.input, outputs: map[string][]byte{}, checkpoint: j.checkpoint, files: j.files}
}

func (j *fileJob) Task() *commonops.Task { return j.task.Clone() }

func (j *fileJob) Input(ctx context.Context) (io.ReadCloser, error) {
	if j.open != nil {
		return io.NopCloser(j.open()), nil
	}
	if j.input == "" {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "no input")
	}
	return os.Open(j.input)
}

type memWriter struct {
	bytes.Buffer
	commit func([]byte)
}

func (w *memWriter) Close() error { w.commit(w.Bytes()); return nil }

func (j *fileJob) Output(ctx context.Context, name, contentType string) (io.WriteCloser, error) {
	return &memWriter{commit: func(b []byte) { j.mu.Lock(); j.outputs[name] = b; j.mu.Unlock() }}, nil
}

func (j *fileJob) Errors(ctx context.Context) (io.WriteCloser, error) {
	return &memWriter{commit: func(b []byte) { j.mu.Lock(); j.errorsCSV = b; j.mu.Unlock() }}, nil
}

func (j *fileJob) File(ctx context.Context, name, contentType string) (io.WriteCloser, error) {
	return &memWriter{commit: func(b []byte) { j.files.Store(name, bytes.Clone(b)) }}, nil
}

func (j *fileJob) OpenFile(ctx context.Context, name string) (io.ReadCloser, error) {
	b, ok := j.files.Load(name)
	if !ok {
		return nil, commonops.Errorf(commonops.ENOTFOUND, "no file %s", name)
	}
	return io.NopCloser(bytes.NewReader(b.([]byte))), nil
}

func (j *fileJob) DeleteFiles(ctx context.Context, dir string) error {
	j.files.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), dir+"/") {
			j.files.Delete(k)
		}
		return true
	})
	return nil
}

// file returns the committed report file name, or nil.
func (j *fileJob) file(name string) []byte {
	b, ok := j.files.Load(name)
	if !ok {
		return nil
	}
	return b.([]byte)
}

func (j *fileJob) Report(u worker.Update) {
	j.mu.Lock()
	defer j.mu.Unlock()
	merge := func(dst **int64, src *int64) {
		if src != nil {
			v := *src
			*dst = &v
		}
	}
	merge(&j.state.TotalItems, u.TotalItems)
	merge(&j.state.ProcessedItems, u.ProcessedItems)
	merge(&j.state.SuccessItems, u.SuccessItems)
	merge(&j.state.FailedItems, u.FailedItems)
	if u.Progress != nil {
		p := *u.Progress
		j.state.Progress = &p
	}
	if u.Message != nil {
		m := *u.Message
		j.state.Message = &m
	}
}

func (j *fileJob) Log(level commonops.LogLevel, message string, details any) {
	j.mu.Lock()
	j.logs = append(j.logs, string(level)+": "+message)
	j.mu.Unlock()
}

func (j *fileJob) Checkpoint(ctx context.Context, cp any, u worker.Update) error {
	raw, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	j.Report(u)
	j.mu.Lock()
	j.checkpoint = raw
	j.checkpoints++
	j.mu.Unlock()
	return nil
}

// counts returns total, processed, success and failed (-1 when unset).
func (j *fileJob) counts() [4]int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var c [4]int64
	for i, p := range []*int64{j.state.TotalItems, j.state.ProcessedItems, j.state.SuccessItems, j.state.FailedItems} {
		c[i] = -1
		if p != nil {
			c[i] = *p
		}
	}
	return c
}

func (j *fileJob) errorRows(t *testing.T) [][]string {
	t.Helper()
	if j.errorsCSV == nil {
		return nil
	}
	rows, err := readCSV(j.errorsCSV)
	if err != nil {
		t.Fatalf("errors.csv: %v", err)
	}
	return rows
}

const productSchema = `{
  "type": "object",
  "properties": {
    "sku": {"type": "string", "minLength": 1},
    "name": {"type": "string", "minLength": 1},
    "description": {"type": "string"},
    "price": {"type": "number", "minimum": 0},
    "stock": {"type": "integer"},
    "active": {"type": "boolean"},
    "releasedAt": {"type": "string", "format": "date"}
  },
  "required": ["sku", "name", "price"]
}`

// loadTestConfig writes a config with the product schema and the given
// sink and source YAML, and loads it.
func loadTestConfig(t testing.TB, sinkYAML, sourceYAML string) *Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "product.schema.json"), []byte(productSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "entities:\n  product:\n    schema: product.schema.json\n    key: [sku]\n    columns: [sku, name, description, price, stock, active, releasedAt]\n"
	if sinkYAML != "" {
		y += "    import:\n      sink:\n" + indent(sinkYAML, 8)
	}
	if sourceYAML != "" {
		y += "    export:\n      source:\n" + indent(sourceYAML, 8)
	}
	p := filepath.Join(dir, "commonops.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig: %v\n%s", err, y)
	}
	return cfg
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(pad + strings.TrimSpace(l) + "\n")
	}
	return b.String()
}

// pgSchema creates a schema of its own for the test and returns a DSN whose
// search_path is that schema. It is testdb's database (skipped under -short).
func pgSchema(t testing.TB) (string, *pgx.Conn) {
	t.Helper()
	pgURL := testdb.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatalf("connect postgres: %v", err)
	}
	name := fmt.Sprintf("bulk_%d_%d", os.Getpid(), schemaSeq.Add(1))
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE; CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET search_path TO "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+name+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "&"
	if !strings.Contains(pgURL, "?") {
		sep = "?"
	}
	return pgURL + sep + "search_path=" + name, conn
}

var schemaSeq atomic.Int64

func readCSV(b []byte) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	return r.ReadAll()
}
