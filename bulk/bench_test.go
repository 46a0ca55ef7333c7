package bulk

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/commonops/commonops/internal/testdb"
	"github.com/commonops/commonops/objectstore"
)

const benchRows = 1_000_000

const benchSchema = `{"type": "object", "properties": {
  "sku": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
  "category": {"type": "string"}, "price": {"type": "number", "minimum": 0},
  "cost": {"type": "number", "minimum": 0}, "stock": {"type": "integer"},
  "weight": {"type": "number"}, "active": {"type": "boolean"},
  "releasedAt": {"type": "string", "format": "date"}, "description": {"type": "string", "maxLength": 200}},
  "required": ["sku", "name", "price"]}`

var benchFile struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// benchCSV writes (once per run) a 1,000,000-row, 10-column CSV.
func benchCSV(b *testing.B) string {
	benchFile.once.Do(func() {
		benchFile.dir, benchFile.err = os.MkdirTemp("", "commonops-bench-*")
		if benchFile.err != nil {
			return
		}
		benchFile.path = filepath.Join(benchFile.dir, "products.csv")
		f, err := os.Create(benchFile.path)
		if err != nil {
			benchFile.err = err
			return
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString("sku,name,category,price,cost,stock,weight,active,releasedAt,description\n")
		for i := 0; i < benchRows; i++ {
			fmt.Fprintf(w, "SKU-%07d,Product %d,cat-%d,%d.%02d,%d.5,%d,%d.125,%t,2026-%02d-%02d,A fine product number %d\n",
				i, i, i%50, i%1000, i%100, i%700, i%5000, i%40, i%2 == 0, i%12+1, i%28+1, i)
		}
		if err := w.Flush(); err != nil {
			benchFile.err = err
		}
		benchFile.err = f.Close()
	})
	if benchFile.err != nil {
		b.Fatal(benchFile.err)
	}
	return benchFile.path
}

func benchConfig(b *testing.B, sink string) *Entity {
	b.Helper()
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(benchSchema), 0o644)
	y := "entities:\n  product:\n    schema: s.json\n    key: [sku]\n    columns: [sku, name, category, price, cost, stock, weight, active, releasedAt, description]\n"
	if sink != "" {
		y += "    import:\n      sink:\n" + indent(sink, 8)
	}
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte(y), 0o644)
	cfg, err := LoadConfig(p)
	if err != nil {
		b.Fatal(err)
	}
	return cfg.Entities["product"]
}

func benchJob(b *testing.B, path string, params any) *fileJob {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	name, size := filepath.Base(path), st.Size()
	j := newFileJob(&testing.T{}, "import", "product", "", "", params)
	j.task.FileName, j.task.FileSize, j.input = &name, &size, path
	return j
}

func reportRows(b *testing.B) {
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkImport compares, on the same generated 1,000,000-row file:
// plain encoding/csv reading, a dry-run import (read, coerce, validate), an
// import into PostgreSQL through the sql sink, and psql \copy of the file
// into the same table. Run with -benchtime=1x.
func BenchmarkImport(b *testing.B) {
	path := benchCSV(b)
	b.Run("encoding-csv", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			r := csv.NewReader(bufio.NewReaderSize(f, 64<<10))
			r.ReuseRecord = true
			n := 0
			for {
				if _, err := r.Read(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				n++
			}
			f.Close()
			if n != benchRows+1 {
				b.Fatalf("got %d rows, want %d", n, benchRows+1)
			}
		}
		reportRows(b)
	})
	b.Run("dry-run", func(b *testing.B) {
		im := &Importer{Entity: benchConfig(b, "")}
		for b.Loop() {
			job := benchJob(b, path, map[string]any{"dryRun": true})
			if err := im.Process(context.Background(), job); err != nil {
				b.Fatal(err)
			}
			if got := job.counts()[2]; got != benchRows {
				b.Fatalf("got %d valid rows, want %d", got, benchRows)
			}
		}
		reportRows(b)
	})
	dsn, conn := pgSchema(b)
	sink := fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products\ncreateTable: true", dsn)
	e := benchConfig(b, sink)
	ctx := context.Background()
	// The sql sink as the example configures it (batches sized from the
	// data), and with the fixed batchSize: 500 the example had before.
	for _, c := range []struct{ name, extra string }{{"postgres-sql-sink", ""}, {"postgres-sql-sink-batch500", "\nbatchSize: 500"}} {
		e := benchConfig(b, sink+c.extra)
		b.Run(c.name, func(b *testing.B) {
			im := &Importer{Entity: e}
			for b.Loop() {
				b.StopTimer()
				conn.Exec(ctx, "DROP TABLE IF EXISTS products")
				b.StartTimer()
				job := benchJob(b, path, nil)
				if err := im.Process(ctx, job); err != nil {
					b.Fatal(err)
				}
			}
			reportRows(b)
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n); err != nil || n != benchRows {
				b.Fatalf("got %d rows (%v), want %d", n, err, benchRows)
			}
		})
	}
	// The default with params.results, its results.csv streamed to a local
	// object store as the worker's job does.
	b.Run("postgres-sql-sink-results", func(b *testing.B) {
		im := &Importer{Entity: e}
		objects, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: b.TempDir(), Secret: []byte("bench-secret-bench-secret-bench!")})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			conn.Exec(ctx, "DROP TABLE IF EXISTS products")
			b.StartTimer()
			job := &storeJob{fileJob: benchJob(b, path, map[string]any{"results": true}), objects: objects}
			if err := im.Process(ctx, job); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
	// The same file again into the full table: every key is there, so each
	// batch is staged with COPY and upserted from the staging table.
	b.Run("postgres-sql-sink-upsert", func(b *testing.B) {
		im := &Importer{Entity: e}
		for b.Loop() {
			job := benchJob(b, path, nil)
			if err := im.Process(ctx, job); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
	b.Run("psql-copy", func(b *testing.B) {
		if _, err := exec.LookPath("psql"); err != nil {
			b.Fatalf("psql is needed for the comparison: %v", err)
		}
		for b.Loop() {
			b.StopTimer()
			if _, err := conn.Exec(ctx, createTableSQL("postgres", "products", e)+"; TRUNCATE products"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			cmd := exec.Command("psql", testdb.PostgresURL(b), "-v", "ON_ERROR_STOP=1", "-c",
				`\copy products (sku, name, category, price, cost, stock, weight, active, "releasedAt", description) FROM '`+path+`' WITH (FORMAT csv, HEADER true)`)
			cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+searchPath(dsn))
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("psql: %v: %s", err, out)
			}
		}
		reportRows(b)
	})
}

func searchPath(dsn string) string {
	_, sp, _ := strings.Cut(dsn, "search_path=")
	return sp
}

// BenchmarkImport1GB imports a generated 1 GB CSV (1,000,000 rows with a
// 1 KB name) as a dry run and into PostgreSQL, and reports the process's
// peak RSS (VmHWM), which the issue bounds at 150 MB. Run it alone, with
// -benchtime=1x, so no earlier benchmark sets the peak.
func BenchmarkImport1GB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "wide.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("sku,name,category,price,cost,stock,weight,active,releasedAt,description\n")
	pad := strings.Repeat("x", 1024)
	for i := 0; i < benchRows; i++ {
		fmt.Fprintf(w, "SKU-%07d,Product %d %s,cat-%d,%d.%02d,%d.5,%d,%d.125,%t,2026-%02d-%02d,A fine product number %d\n",
			i, i, pad, i%50, i%1000, i%100, i%700, i%5000, i%40, i%2 == 0, i%12+1, i%28+1, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("dry-run", func(b *testing.B) {
		im := &Importer{Entity: benchConfig(b, "")}
		for b.Loop() {
			job := benchJob(b, path, map[string]any{"dryRun": true})
			if err := im.Process(context.Background(), job); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
	dsn, conn := pgSchema(b)
	e := benchConfig(b, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products\ncreateTable: true", dsn))
	b.Run("postgres-sql-sink", func(b *testing.B) {
		im := &Importer{Entity: e}
		for b.Loop() {
			if err := im.Process(context.Background(), benchJob(b, path, nil)); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
	// With params.results, into an empty table, its results.csv streamed
	// to a local object store as the worker's job does.
	b.Run("postgres-sql-sink-results", func(b *testing.B) {
		im := &Importer{Entity: e}
		objects, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: b.TempDir(), Secret: []byte("bench-secret-bench-secret-bench!")})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			conn.Exec(context.Background(), "DROP TABLE IF EXISTS products")
			b.StartTimer()
			job := &storeJob{fileJob: benchJob(b, path, map[string]any{"results": true}), objects: objects}
			if err := im.Process(context.Background(), job); err != nil {
				b.Fatal(err)
			}
			info, err := objects.Stat(context.Background(), objectstore.ReportKey(job.task.ID, ResultsFile))
			if err != nil || info.Size < benchRows*10 {
				b.Fatalf("results.csv: got %d bytes (%v), want a line per row", info.Size, err)
			}
		}
		reportRows(b)
	})
}
