package bulk

import (
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/commonops/commonops/bulk/tabular"
)

// FuzzImportRow feeds arbitrary CSV through the reader, coercion and
// validation: nothing may panic, every row is either a record the schema
// accepts or an error message that names its row, and a row number never
// goes backwards.
func FuzzImportRow(f *testing.F) {
	for _, s := range []string{
		goodCSV,
		"sku,name,price\nA,\"B,\"\"q\"\"\",1e3\n",
		"sku,name,price,stock\nA,B,1,99999999999999999999\n",
		"sku,name,price\n\"open,1\n",
		"sku,name,price\nA,\xff,1\n",
		"\xEF\xBB\xBFsku,name,price,active,releasedAt\nA,B,-0,no,2026-02-30\n",
	} {
		f.Add(s)
	}
	cfg := loadTestConfig(f, "", "")
	im := &Importer{Entity: cfg.Entities["product"]}
	f.Fuzz(func(t *testing.T, content string) {
		rd, err := tabular.Open(strings.NewReader(content), tabular.Options{Format: tabular.CSV})
		if err != nil {
			return
		}
		defer rd.Close()
		run := &importRun{im: im, job: newFileJob(t, "import", "product", "", "", nil), rd: rd}
		if err := run.plan(); err != nil {
			return
		}
		last := 0
		for {
			row, err := rd.Next()
			if err == io.EOF || err != nil {
				return
			}
			if row.Num < last {
				t.Fatalf("row %d after row %d", row.Num, last)
			}
			last = row.Num
			rec, msg := run.record(row, nil)
			if msg != "" {
				if !strings.HasPrefix(msg, "row ") || !utf8.ValidString(strings.ToValidUTF8(msg, "")) {
					t.Fatalf("got message %q, want one naming the row", msg)
				}
				continue
			}
			if m := im.Entity.Validate(rec); m != "" {
				t.Fatalf("got an accepted record %v that does not validate: %s", rec, m)
			}
		}
	})
}
