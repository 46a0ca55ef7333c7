package bulk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk/tabular"
	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/operations"
	"github.com/commonops/commonops/worker"
)

var exportClock = func() time.Time { return time.Date(2026, 11, 29, 10, 15, 0, 0, time.UTC) }

// readOutput reads a committed export back as header + rows of text.
func readOutput(t *testing.T, b []byte, f tabular.Format, gz bool) ([]string, [][]string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		r = zr
	}
	rd, err := tabular.Open(r, tabular.Options{Format: f, TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("read export: %v", err)
	}
	defer rd.Close()
	var rows [][]string
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil || row.Err != nil {
			t.Fatalf("read export: %v %v", err, row.Err)
		}
		if row.Record != nil {
			var cells []string
			for _, c := range []string{"sku", "name", "price"} {
				cells = append(cells, tabular.FormatCell(row.Record[c]))
			}
			rows = append(rows, cells)
			continue
		}
		rows = append(rows, slices.Clone(row.Cells))
	}
	return rd.Header(), rows
}

func TestExportSQLite(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "products.db")
	cfg := loadTestConfig(t,
		"type: sql\ndriver: sqlite\ndsn: "+dsn+"\ntable: products\ncreateTable: true",
		"type: sql\ndriver: sqlite\ndsn: "+dsn+"\nquery: SELECT * FROM products WHERE (:minStock IS NULL OR stock >= :minStock)\nkeyset: sku\npageSize: 10")
	e := cfg.Entities["product"]
	if err := (&Importer{Entity: e}).Process(context.Background(), newFileJob(t, "import", "product", "p.csv", productsCSV(25), nil)); err != nil {
		t.Fatalf("import: %v", err)
	}
	reg := worker.NewRegistry()
	if err := Register(reg, cfg, &operations.Service{Store: testdb.SQLite(t)}); err != nil {
		t.Fatal(err)
	}
	p, ok := reg.Lookup("export", "product")
	if !ok {
		t.Fatal("got no export processor for product, want one")
	}
	ex := p.(*Exporter)
	ex.Now = exportClock
	for _, tt := range []struct {
		params   map[string]any
		name     string
		format   tabular.Format
		gz       bool
		wantRows int
	}{
		{nil, "product-export-20261129T101500Z.csv", tabular.CSV, false, 25},
		{map[string]any{"format": "jsonl", "minStock": 20}, "product-export-20261129T101500Z.jsonl", tabular.JSONL, false, 6},
		{map[string]any{"format": "xlsx"}, "product-export-20261129T101500Z.xlsx", tabular.XLSX, false, 25},
		{map[string]any{"compress": "gzip", "minStock": 10}, "product-export-20261129T101500Z.csv.gz", tabular.CSV, true, 16},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job := newFileJob(t, "export", "product", "", "", tt.params)
			if err := ex.Process(context.Background(), job); err != nil {
				t.Fatalf("Process: %v", err)
			}
			out, ok := job.outputs[tt.name]
			if !ok {
				t.Fatalf("got outputs %v, want %s", keys(job.outputs), tt.name)
			}
			header, rows := readOutput(t, out, tt.format, tt.gz)
			if tt.format != tabular.JSONL && !slices.Equal(header, e.Columns) {
				t.Errorf("got header %v, want %v", header, e.Columns)
			}
			if len(rows) != tt.wantRows {
				t.Fatalf("got %d rows, want %d", len(rows), tt.wantRows)
			}
			if got, want := job.counts(), [4]int64{int64(tt.wantRows), int64(tt.wantRows), int64(tt.wantRows), 0}; got != want {
				t.Errorf("got counts %v, want %v", got, want)
			}
			if rows[0][0] != "P-1" && rows[0][0] != "P-10" && rows[0][0] != "P-20" {
				t.Errorf("got first row %v, want the lowest sku first", rows[0])
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func TestExportTaskHistory(t *testing.T) {
	t.Parallel()
	st := testdb.SQLite(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i, in := range []struct{ tenant, taskType string }{
		{commonops.DefaultTenant, "import"}, {commonops.DefaultTenant, "import"},
		{commonops.DefaultTenant, "export"}, {"other", "import"},
	} {
		task, ch, err := commonops.NewTask(fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i), in.tenant, "tester",
			commonops.CreateInput{TaskType: in.taskType, EntityType: "product"}, commonops.Limits{}, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg := worker.NewRegistry()
	if err := Register(reg, nil, &operations.Service{Store: st}); err != nil {
		t.Fatal(err)
	}
	p, ok := reg.Lookup("export", "task")
	if !ok {
		t.Fatal("got no task export, want the built-in one")
	}
	job := newFileJob(t, "export", "task", "", "", map[string]any{"taskType": "import", "status": "pending"})
	if err := p.Process(ctx, job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(job.outputs) != 1 {
		t.Fatalf("got %d outputs, want 1", len(job.outputs))
	}
	for _, out := range job.outputs {
		header, rows := readOutput(t, out, tabular.CSV, false)
		if !slices.Equal(header, TaskColumns) {
			t.Errorf("got header %v, want %v", header, TaskColumns)
		}
		if len(rows) != 2 || rows[0][0] != "00000000-0000-0000-0000-000000000000" || rows[1][1] != "import" {
			t.Errorf("got rows %q, want the tenant's two imports, oldest first", rows)
		}
	}
	if got := job.counts()[0]; got != 2 {
		t.Errorf("got totalItems %d, want 2", got)
	}
	bad := newFileJob(t, "export", "task", "", "", map[string]any{"status": "sleeping"})
	if err := p.Process(ctx, bad); !worker.IsPermanent(err) {
		t.Errorf("got %v, want a permanent error for an unknown status", err)
	}
}

func TestExportHTTPSourceCursor(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var items []map[string]any
		for i := start; i < min(start+limit, 7); i++ {
			items = append(items, map[string]any{"sku": fmt.Sprintf("H-%d", i), "name": "n", "price": 1.25})
		}
		next := ""
		if start+limit < 7 {
			next = strconv.Itoa(start + limit)
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items, "nextCursor": next, "total": 7})
	}))
	defer srv.Close()
	cfg := loadTestConfig(t, "", "type: http\nurl: "+srv.URL+"\npageSize: 3")
	ex := &Exporter{Entity: "product", Columns: cfg.Entities["product"].Columns, Now: exportClock,
		Open: func(ctx context.Context, job worker.Job) (Source, error) {
			return OpenSource(ctx, cfg.Entities["product"])
		}}
	job := newFileJob(t, "export", "product", "", "", nil)
	if err := ex.Process(context.Background(), job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	_, rows := readOutput(t, job.outputs["product-export-20261129T101500Z.csv"], tabular.CSV, false)
	if len(rows) != 7 || rows[6][0] != "H-6" || rows[6][3] != "1.25" {
		t.Errorf("got rows %q, want H-0..H-6 with price 1.25", rows)
	}
}

func TestBindNamed(t *testing.T) {
	t.Parallel()
	q, args := bindNamed("SELECT 'a:b', x::text FROM t WHERE a = :a AND (:b IS NULL OR b = :b) AND c = \":c\"", "postgres",
		map[string]any{"a": "1"}, 1)
	if want := "SELECT 'a:b', x::text FROM t WHERE a = $1 AND ($2 IS NULL OR b = $2) AND c = \":c\""; q != want {
		t.Errorf("got %q, want %q", q, want)
	}
	if len(args) != 2 || args[0] != "1" || args[1] != nil {
		t.Errorf("got args %v, want [1 <nil>]", args)
	}
}

// The task export leaves itself out of the history it writes (rows and
// totalItems), and params.columns adds the task's params and tenant.
func TestExportTaskHistoryExcludesItself(t *testing.T) {
	t.Parallel()
	st := testdb.SQLite(t)
	ctx := context.Background()
	now := time.Now().UTC()
	ids := []string{"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"}
	inputs := []commonops.CreateInput{
		{TaskType: "import", EntityType: "product", Params: json.RawMessage(`{"dryRun":true}`)},
		{TaskType: "export", EntityType: "task", Params: json.RawMessage(`{"columns":["params","tenantId"]}`)},
	}
	for i, in := range inputs {
		task, ch, err := commonops.NewTask(ids[i], "acme", "tester", in, commonops.Limits{}, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateTask(ctx, task, ch, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg := worker.NewRegistry()
	if err := Register(reg, nil, &operations.Service{Store: st}); err != nil {
		t.Fatal(err)
	}
	p, _ := reg.Lookup("export", "task")
	job := newFileJob(t, "export", "task", "", "", map[string]any{"columns": []string{"params", "tenantId"}})
	job.task.ID, job.task.TenantID, job.task.CreatedAt = ids[1], "acme", now.Add(time.Second)
	if err := p.Process(ctx, job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	for _, out := range job.outputs {
		header, rows := readOutput(t, out, tabular.CSV, false)
		if want := append(slices.Clone(TaskColumns), "params", "tenantId"); !slices.Equal(header, want) {
			t.Errorf("got header %v, want %v", header, want)
		}
		if len(rows) != 1 || rows[0][0] != ids[0] {
			t.Fatalf("got rows %q, want only the import %s (not the export itself)", rows, ids[0])
		}
		n := len(rows[0])
		if rows[0][n-2] != `{"dryRun":true}` || rows[0][n-1] != "acme" {
			t.Errorf("got params %q and tenant %q, want {\"dryRun\":true} and acme", rows[0][n-2], rows[0][n-1])
		}
	}
	if got := job.counts()[0]; got != 1 {
		t.Errorf("got totalItems %d, want 1", got)
	}
}
