package bulk

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/commonops/commonops/objectstore"
	"github.com/commonops/commonops/worker"
)

// storeJob is a fileJob whose outputs stream to a real object store, as
// the worker pool's job does, instead of being kept in memory.
type storeJob struct {
	*fileJob
	objects objectstore.Store

	mu   sync.Mutex
	keys []string
}

func (j *storeJob) Output(ctx context.Context, name, contentType string) (io.WriteCloser, error) {
	key := objectstore.OutputKey(j.task.ID, name)
	w, err := j.objects.Create(ctx, key, contentType)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	j.keys = append(j.keys, key)
	j.mu.Unlock()
	return w, nil
}

func (j *storeJob) Errors(ctx context.Context) (io.WriteCloser, error) {
	return j.objects.Create(ctx, objectstore.ErrorsKey(j.task.ID), "text/csv")
}

func (j *storeJob) File(ctx context.Context, name, contentType string) (io.WriteCloser, error) {
	return j.objects.Create(ctx, objectstore.ReportKey(j.task.ID, name), contentType)
}

func (j *storeJob) OpenFile(ctx context.Context, name string) (io.ReadCloser, error) {
	return j.objects.Open(ctx, objectstore.ReportKey(j.task.ID, name))
}

func (j *storeJob) DeleteFiles(ctx context.Context, dir string) error {
	return j.objects.DeletePrefix(ctx, objectstore.ReportKey(j.task.ID, dir)+"/")
}

// exportDB returns a SQLite file of benchRows products with a 1 KB name
// (about 1.1 GB of CSV), seeded by one INSERT ... SELECT over a recursive
// series and kept in the temp directory for the next run.
func exportDB(b *testing.B) string {
	path := filepath.Join(os.TempDir(), "commonops-bench-export-1gb.db")
	if db, err := sql.Open("sqlite", path); err == nil {
		var n int
		err := db.QueryRow("SELECT count(*) FROM products").Scan(&n)
		db.Close()
		if err == nil && n == benchRows {
			return path
		}
	}
	tmp := path + ".seeding"
	os.Remove(tmp)
	db, err := sql.Open("sqlite", tmp+"?_pragma=journal_mode(off)&_pragma=synchronous(off)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT, category TEXT, price REAL, cost REAL,
			stock INTEGER, weight REAL, active INTEGER, releasedAt TEXT, description TEXT) WITHOUT ROWID`,
		`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < ` + fmt.Sprint(benchRows-1) + `)
		INSERT INTO products SELECT printf('SKU-%07d', i), 'Product ' || i || ' ' || ?, 'cat-' || (i%50),
			(i%1000) + (i%100)/100.0, (i%700) + 0.5, i%5000, (i%40) + 0.125, i%2 = 0,
			printf('2026-%02d-%02d', i%12+1, i%28+1), 'A fine product number ' || i FROM s`,
	} {
		if _, err := db.Exec(q, strings.Repeat("x", 1024)); err != nil {
			b.Fatalf("seed %s: %v", path, err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

var benchColumns = []string{"sku", "name", "category", "price", "cost", "stock", "weight", "active", "releasedAt", "description"}

// BenchmarkExport1GB exports a 1,000,000-row SQLite table (about 1.1 GB of
// CSV) through the sql source and the export processor into a local
// object store on disk, and reports rows/s, the output's size and the
// process's peak RSS (VmHWM) after the run, which the issue bounds at
// 150 MB, with its growth during the run. VmHWM is process-wide: run one
// format per process for a clean peak, e.g.
//
//	go test ./bulk -run '^$' -bench 'Export1GB/csv$' -benchtime 1x
func BenchmarkExport1GB(b *testing.B) {
	dsn := exportDB(b)
	for _, f := range []struct{ name, params string }{
		{"csv", `{}`},
		{"jsonl", `{"format": "jsonl"}`},
		{"csv-gzip", `{"compress": "gzip"}`},
		{"xlsx", `{"format": "xlsx"}`},
	} {
		b.Run(f.name, func(b *testing.B) {
			src := &SourceConfig{Type: "sql", Driver: "sqlite", DSN: dsn, Query: "SELECT * FROM products", Keyset: "sku"}
			ex := &Exporter{Entity: "product", Columns: benchColumns, Open: func(ctx context.Context, _ worker.Job) (Source, error) {
				return OpenSource(ctx, &Entity{Name: "product", Source: src})
			}}
			objects, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: b.TempDir(), Secret: []byte("bench-secret-bench-secret-bench!")})
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			before := peakRSSMB()
			var size int64
			for b.Loop() {
				fj := newFileJob(&testing.T{}, "export", "product", "", "", nil)
				fj.task.Params = []byte(f.params)
				job := &storeJob{fileJob: fj, objects: objects}
				if err := ex.Process(context.Background(), job); err != nil {
					b.Fatal(err)
				}
				if got := fj.counts()[2]; got != benchRows {
					b.Fatalf("got %d rows exported, want %d", got, benchRows)
				}
				if len(job.keys) != 1 {
					b.Fatalf("got outputs %v, want one", job.keys)
				}
				info, err := objects.Stat(context.Background(), job.keys[0])
				if err != nil {
					b.Fatal(err)
				}
				size = info.Size
				if err := objects.DeletePrefix(context.Background(), "tasks/"+fj.task.ID+"/"); err != nil {
					b.Fatal(err)
				}
			}
			after := peakRSSMB()
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(size)/1e6, "outputMB")
			b.ReportMetric(after, "peakRSS-MB")
			b.ReportMetric(after-before, "peakRSSgrowth-MB")
		})
	}
}
