package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/worker"
)

// productsCSV returns a CSV of n valid products P-1..P-n.
func productsCSV(n int) string {
	var b strings.Builder
	b.WriteString("sku,name,price,stock\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "P-%d,Product %d,%d.5,%d\n", i, i, i, i)
	}
	return b.String()
}

// recordingSink is an HTTP endpoint that keeps the skus it accepted; fail
// decides, per request number (from 1), whether to answer 503 instead.
type recordingSink struct {
	mu       sync.Mutex
	requests int
	accepted map[string]int
	fail     func(n int) bool
	reject   string // a sku refused record by record
	headers  http.Header
}

func (s *recordingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.headers = r.Header.Clone()
	if s.fail != nil && s.fail(s.requests) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var body struct{ Records []map[string]any }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var errs []RecordError
	for i, rec := range body.Records {
		sku, _ := rec["sku"].(string)
		if sku == s.reject {
			errs = append(errs, RecordError{Index: i, Message: "sku is discontinued"})
			continue
		}
		s.accepted[sku]++
	}
	json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

func httpImport(t *testing.T, s *recordingSink, retries int) *Importer {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Setenv("BULK_TEST_TOKEN", "s3cret")
	cfg := loadTestConfig(t, fmt.Sprintf("type: http\nurl: %s\nheaders: {Authorization: \"Bearer ${BULK_TEST_TOKEN}\"}\nbatchSize: 10\nretries: %d\nbackoff: 1ms", srv.URL, retries), "")
	return &Importer{Entity: cfg.Entities["product"]}
}

func TestHTTPSinkRetries500Then200(t *testing.T) {
	s := &recordingSink{accepted: map[string]int{}, fail: func(n int) bool { return n == 1 }, reject: "P-3"}
	im := httpImport(t, s, 3)
	job := newFileJob(t, "import", "product", "p.csv", productsCSV(5), nil)
	if err := im.Process(context.Background(), job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if s.requests != 2 {
		t.Errorf("got %d requests, want 2 (a 503, then the retry)", s.requests)
	}
	if len(s.accepted) != 4 {
		t.Errorf("got %d accepted records, want 4", len(s.accepted))
	}
	if got := s.headers.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("got Authorization %q, want the env-expanded header", got)
	}
	if got, want := job.counts(), [4]int64{5, 5, 4, 1}; got != want {
		t.Errorf("got counts %v, want %v", got, want)
	}
	rows := job.errorRows(t)
	if len(rows) != 2 || rows[1][0] != "4" || rows[1][len(rows[1])-1] != "row 4: refused by the sink: sku is discontinued" {
		t.Errorf("got errors.csv %q, want row 4 refused by the sink", rows)
	}
}

func TestHTTPSinkDownResumesFromCheckpoint(t *testing.T) {
	down := true
	s := &recordingSink{accepted: map[string]int{}}
	s.fail = func(n int) bool { return down && n > 2 } // two batches pass, then the sink is down
	im := httpImport(t, s, 2)
	job := newFileJob(t, "import", "product", "p.csv", productsCSV(45), nil)

	err := im.Process(context.Background(), job)
	if err == nil || worker.IsPermanent(err) || commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Fatalf("got %v, want a retryable EUNAVAILABLE error", err)
	}
	if got := string(job.checkpoint); got != `{"row":21,"sinkRejected":0}` {
		t.Errorf("got checkpoint %s, want row 21 (two batches of 10 after the header)", got)
	}
	s.mu.Lock()
	down = false
	s.mu.Unlock()
	next := job.retry()
	if err := im.Process(context.Background(), next); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if len(s.accepted) != 45 {
		t.Errorf("got %d distinct records, want 45", len(s.accepted))
	}
	for sku, n := range s.accepted {
		if n != 1 {
			t.Errorf("got %s sent %d times, want once", sku, n)
		}
	}
	if got, want := next.counts(), [4]int64{45, 45, 45, 0}; got != want {
		t.Errorf("got counts %v, want %v", got, want)
	}
}

func TestHTTPSinkRefusesBatch(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such endpoint", http.StatusNotFound)
	}))
	defer srv.Close()
	cfg := loadTestConfig(t, "type: http\nurl: "+srv.URL, "")
	job := newFileJob(t, "import", "product", "p.csv", productsCSV(2), nil)
	err := (&Importer{Entity: cfg.Entities["product"]}).Process(context.Background(), job)
	if !worker.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("got %v, want a permanent error naming the 404", err)
	}
}

// TestPostgresSinkDownResumes stands a trigger in for a database that stops
// answering after two batches (SQLSTATE 57P03, cannot_connect_now), and
// counts every row the table really inserted or updated: after the retry,
// each record was upserted exactly once.
func TestPostgresSinkDownResumes(t *testing.T) {
	t.Parallel()
	dsn, conn := pgSchema(t)
	ctx := context.Background()
	cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products\ncreateTable: true\nbatchSize: 10", dsn), "")
	if _, err := conn.Exec(ctx, createTableSQL("postgres", "products", cfg.Entities["product"])+`;
		CREATE TABLE upserts (n int NOT NULL);
		CREATE TABLE outage (down bool NOT NULL);
		INSERT INTO outage VALUES (true);
		CREATE FUNCTION count_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF (SELECT down FROM outage) AND (SELECT count(*) FROM upserts) >= 20 THEN
				RAISE EXCEPTION 'database is down' USING ERRCODE = '57P03';
			END IF;
			INSERT INTO upserts VALUES (1);
			RETURN NEW;
		END $$;
		CREATE TRIGGER count_upsert AFTER INSERT OR UPDATE ON products FOR EACH ROW EXECUTE FUNCTION count_upsert();`); err != nil {
		t.Fatal(err)
	}
	im := &Importer{Entity: cfg.Entities["product"]}
	job := newFileJob(t, "import", "product", "p.csv", productsCSV(45), nil)
	err := im.Process(ctx, job)
	if err == nil || worker.IsPermanent(err) || commonops.ErrorCode(err) != commonops.EUNAVAILABLE {
		t.Fatalf("got %v, want a retryable EUNAVAILABLE error", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE outage SET down = false"); err != nil {
		t.Fatal(err)
	}
	next := job.retry()
	if err := im.Process(ctx, next); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	var rows, upserts int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM upserts)").Scan(&rows, &upserts); err != nil {
		t.Fatal(err)
	}
	if rows != 45 || upserts != 45 {
		t.Errorf("got %d rows and %d upserts, want 45 and 45 (no record sent twice)", rows, upserts)
	}
	var price string
	if err := conn.QueryRow(ctx, "SELECT price::text FROM products WHERE sku = 'P-7'").Scan(&price); err != nil || price != "7.5" {
		t.Errorf("got P-7 price %q (%v), want 7.5", price, err)
	}
}

// TestPostgresSinkRecordErrors checks that a record the table refuses (a
// CHECK constraint the schema does not know) fails alone, and that a key
// twice in one batch is upserted once, the last one winning.
func TestPostgresSinkRecordErrors(t *testing.T) {
	t.Parallel()
	dsn, conn := pgSchema(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, description text,
		price numeric NOT NULL, stock bigint CHECK (stock < 100), active boolean, "releasedAt" date)`); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products", dsn), "")
	csv := "sku,name,price,stock,active,releasedAt\nA,Apple,1,5,true,2026-01-02\nB,Bad,1,500,,\nA,Apricot,2,6,false,\n"
	job := newFileJob(t, "import", "product", "p.csv", csv, nil)
	if err := (&Importer{Entity: cfg.Entities["product"]}).Process(ctx, job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	var n int
	var name string
	if err := conn.QueryRow(ctx, "SELECT count(*), max(name) FROM products").Scan(&n, &name); err != nil {
		t.Fatal(err)
	}
	if n != 1 || name != "Apricot" {
		t.Errorf("got %d rows named %q, want 1 named Apricot", n, name)
	}
	rows := job.errorRows(t)
	if len(rows) != 2 || rows[1][0] != "3" || !strings.Contains(rows[1][len(rows[1])-1], "check constraint") {
		t.Errorf("got errors.csv %q, want row 3 refused by the check constraint", rows)
	}
}

// TestPostgresSinkCopyThenUpsert imports into an empty table (plain COPY)
// values that COPY's text format must escape, then imports the same keys
// again with new values: the second import meets existing keys and upserts,
// and both leave exactly what the file says.
func TestPostgresSinkCopyThenUpsert(t *testing.T) {
	t.Parallel()
	dsn, conn := pgSchema(t)
	ctx := context.Background()
	cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products\ncreateTable: true\nbatchSize: 3", dsn), "")
	im := &Importer{Entity: cfg.Entities["product"]}
	descs := []string{"tab\there", `back\slash`, "new\nline", `\N`, "cr\rhere", "", "plain"}
	var b strings.Builder
	b.WriteString("sku,name,price,description\n")
	for i, d := range descs {
		fmt.Fprintf(&b, "P-%d,Name %d,%d,\"%s\"\n", i, i, i, d)
	}
	if err := im.Process(ctx, newFileJob(t, "import", "product", "p.csv", b.String(), nil)); err != nil {
		t.Fatalf("first import: %v", err)
	}
	for i, want := range descs {
		var got *string
		if err := conn.QueryRow(ctx, "SELECT description FROM products WHERE sku = $1", fmt.Sprintf("P-%d", i)).Scan(&got); err != nil {
			t.Fatalf("P-%d: %v", i, err)
		}
		if got == nil || *got != want {
			t.Errorf("P-%d: got description %v, want %q (a quoted \"\" is the empty string)", i, got, want)
		}
	}
	job := newFileJob(t, "import", "product", "p.csv", "sku,name,price\nP-1,Renamed,10\nP-9,New,9\nP-1,Renamed again,11\nP-2,Two,2\n", nil)
	if err := im.Process(ctx, job); err != nil {
		t.Fatalf("second import: %v", err)
	}
	if c := job.counts(); c[2] != 4 || c[3] != 0 {
		t.Errorf("got counts %v, want 4 successful and 0 failed", c)
	}
	var n int
	var name, price string
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM products), name, price::text FROM products WHERE sku = 'P-1'").Scan(&n, &name, &price); err != nil {
		t.Fatal(err)
	}
	if n != len(descs)+1 || name != "Renamed again" || price != "11" {
		t.Errorf("got %d rows, P-1 %q at %s; want %d rows, P-1 \"Renamed again\" at 11", n, name, price, len(descs)+1)
	}
}

// A table with no unique index on the key cannot take upserts: the import
// refuses it instead of appending the rows of a re-import a second time.
func TestPostgresSinkNeedsUniqueKey(t *testing.T) {
	t.Parallel()
	dsn, conn := pgSchema(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE products (sku text NOT NULL, name text NOT NULL, description text,
		price numeric NOT NULL, stock bigint, active boolean, "releasedAt" date)`); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, fmt.Sprintf("type: sql\ndriver: postgres\ndsn: %s\ntable: products", dsn), "")
	csv := "sku,name,price\nA,Apple,1\nB,Banana,2\n"
	for i := range 2 {
		job := newFileJob(t, "import", "product", "p.csv", csv, nil)
		err := (&Importer{Entity: cfg.Entities["product"]}).Process(ctx, job)
		if err == nil {
			t.Fatalf("import %d into a table without a unique key: got nil, want an error", i+1)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("rows stored: got %d, want 0", n)
	}
}

// TestAsyncBatchSettledInOrder imports 30 rows in batches of 10 through a
// sink that is slow and refuses the fifth record of each batch, with a bad
// row (15) while the first batch is being stored. errors.csv keeps the
// file's order (the sink's refusal of row 6 before row 16's error), and
// when the bad row aborts the import (onError=abort), the batch that was
// being stored still counts: its rows, its refusal and its checkpoint.
func TestAsyncBatchSettledInOrder(t *testing.T) {
	t.Parallel()
	cfg := loadTestConfig(t, "", "")
	var mu sync.Mutex
	stored := 0
	im := &Importer{Entity: cfg.Entities["product"], BatchSize: 10, Open: func(context.Context, *Entity) (Sink, error) {
		return funcSink{write: func(batch []Record) ([]RecordError, error) {
			time.Sleep(50 * time.Millisecond) // still storing when row 16 is read
			mu.Lock()
			stored += len(batch) - 1
			mu.Unlock()
			return []RecordError{{Index: 4, Message: "refused"}}, nil
		}}, nil
	}}
	csv := strings.Replace(productsCSV(30), "P-15,Product 15,15.5", "P-15,Product 15,abc", 1)
	for _, c := range []struct {
		params     map[string]any
		wantRows   []string
		wantCounts [4]int64 // processed, success... as job.counts
		wantStored int
	}{
		{nil, []string{"6", "16", "17", "27"}, [4]int64{30, 30, 26, 4}, 26},
		{map[string]any{"onError": "abort"}, []string{"6", "16"}, [4]int64{15, 15, 9, 2}, 9},
	} {
		mu.Lock()
		stored = 0
		mu.Unlock()
		job := newFileJob(t, "import", "product", "p.csv", csv, c.params)
		err := im.Process(context.Background(), job)
		if c.params == nil && err != nil {
			t.Fatalf("Process: %v", err)
		}
		if c.params != nil && !errors.Is(err, errStopped) {
			t.Fatalf("Process with %v: got %v, want the abort", c.params, err)
		}
		var rows []string
		for _, r := range job.errorRows(t)[1:] {
			rows = append(rows, r[0])
		}
		mu.Lock()
		got := stored
		mu.Unlock()
		if !slices.Equal(rows, c.wantRows) || job.counts() != c.wantCounts || got != c.wantStored {
			t.Errorf("params %v: got errors.csv rows %v, counts %v, %d stored; want %v, %v, %d",
				c.params, rows, job.counts(), got, c.wantRows, c.wantCounts, c.wantStored)
		}
	}
}
