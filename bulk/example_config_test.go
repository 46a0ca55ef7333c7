package bulk

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestProductExample imports examples/product/products.csv with the
// example's own configuration (its SQLite file moved to a temp dir) and
// checks the README's figures: 21 rows, 15 imported, 6 failed.
func TestProductExample(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../examples/product/commonops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Entities["product"]
	sink := *e.Sink
	sink.DSN = filepath.Join(t.TempDir(), "products.db")
	e.Sink = &sink
	b, err := os.ReadFile("../examples/product/products.csv")
	if err != nil {
		t.Fatal(err)
	}
	job := newFileJob(t, "import", "product", "products.csv", string(b), nil)
	if err := (&Importer{Entity: e}).Process(context.Background(), job); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if got, want := job.counts(), [4]int64{21, 21, 15, 6}; got != want {
		t.Errorf("got counts %v, want %v", got, want)
	}
	rows := job.errorRows(t)
	if len(rows) != 7 || rows[1][0] != "9" || rows[1][len(rows[1])-1] != `row 9, column price: "abc" is not a number` {
		t.Errorf("got errors.csv %q, want row 9 first with the price error", rows)
	}
}
