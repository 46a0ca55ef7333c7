package bulk

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/commonops/commonops/worker"
)

// reportingJob is a fileJob that keeps every report with the time it was
// made, as the worker's reporter receives them.
type reportingJob struct {
	*fileJob
	start time.Time

	rmu     sync.Mutex
	reports []timedUpdate
}

type timedUpdate struct {
	at time.Duration // since start
	u  worker.Update
}

func (j *reportingJob) Report(u worker.Update) {
	j.rmu.Lock()
	j.reports = append(j.reports, timedUpdate{time.Since(j.start), u})
	j.rmu.Unlock()
	j.fileJob.Report(u)
}

func (j *reportingJob) Checkpoint(ctx context.Context, cp any, u worker.Update) error {
	j.rmu.Lock()
	j.reports = append(j.reports, timedUpdate{time.Since(j.start), u})
	j.rmu.Unlock()
	return j.fileJob.Checkpoint(ctx, cp, u)
}

func (j *reportingJob) all() []timedUpdate {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	return append([]timedUpdate(nil), j.reports...)
}

// throttled hands out its bytes at about rate bytes a second, so that an
// import of a small file runs for seconds like one of a large file does.
type throttled struct {
	r    io.Reader
	rate int
}

func (t *throttled) Read(p []byte) (int, error) {
	p = p[:min(len(p), 4096)]
	n, err := t.r.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(t.rate))
	return n, err
}

// TestImportProgressWhileRunning imports a CSV file slowed down to about
// three seconds and checks what a client polling the task would see: within
// the first second a progress above 0, an estimated total near the real one
// and a time remaining; a report at least every second; progress that never
// goes back nor reaches 100 early; and at the end exact figures.
func TestImportProgressWhileRunning(t *testing.T) {
	t.Parallel()
	const rows = 30000
	for _, format := range []string{"csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			content := productsCSV(rows)
			if format == "jsonl" {
				content = jsonlProducts(rows)
			}
			const runFor = 3 * time.Second
			rate := int(int64(len(content)) * int64(time.Second) / int64(runFor))
			fj := newFileJob(t, "import", "product", "p."+format, content, map[string]any{"dryRun": true})
			fj.open = func() io.Reader { return &throttled{r: strings.NewReader(content), rate: rate} }
			job := &reportingJob{fileJob: fj, start: time.Now()}
			cfg := loadTestConfig(t, "", "")
			if err := (&Importer{Entity: cfg.Entities["product"]}).Process(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			reports := job.all()
			if len(reports) < 2 {
				t.Fatalf("got %d reports, want several", len(reports))
			}
			running, last := reports[:len(reports)-1], reports[len(reports)-1]

			var early *timedUpdate
			for i, r := range running {
				if r.at <= time.Second && r.u.Progress != nil && *r.u.Progress > 0 && r.u.TotalItems != nil && r.u.EtaSeconds != nil {
					early = &running[i]
					break
				}
			}
			if early == nil {
				t.Fatalf("no report in the first second with progress > 0, totalItems and etaSeconds; got %s", describe(running))
			}
			if est := *early.u.TotalItems; est < rows*8/10 || est > rows*12/10 {
				t.Errorf("got an estimated total of %d after %v, want within 20%% of %d", est, early.at, rows)
			}
			if early.u.TotalItemsEstimated == nil || !*early.u.TotalItemsEstimated {
				t.Errorf("got totalItemsEstimated %v with the estimate, want true", early.u.TotalItemsEstimated)
			}
			// The throttle makes the import last runFor at least; a loaded
			// machine (or -race) makes it longer, which the ETA sees.
			left := reports[len(reports)-1].at - early.at
			if eta := time.Duration(*early.u.EtaSeconds) * time.Second; eta < left/3 || eta > left*3 {
				t.Errorf("got etaSeconds %v after %v, want within 3 times of the %v the import really took still", eta, early.at, left.Round(time.Millisecond))
			}

			prev, prevAt := 0.0, time.Duration(0)
			for _, r := range running {
				if gap := r.at - prevAt; gap > time.Second {
					t.Errorf("got %v between reports (at %v), want at most 1s", gap, r.at)
				}
				prevAt = r.at
				if r.u.Progress == nil {
					continue
				}
				if p := *r.u.Progress; p < prev || p > 99 {
					t.Errorf("got progress %.2f at %v after %.2f, want rising and at most 99 while running", p, r.at, prev)
				} else {
					prev = p
				}
			}

			u := last.u
			if u.Progress == nil || *u.Progress != 100 || u.TotalItems == nil || *u.TotalItems != rows ||
				u.TotalItemsEstimated == nil || *u.TotalItemsEstimated || u.EtaSeconds == nil || *u.EtaSeconds != 0 {
				t.Errorf("got last report %s, want progress 100, totalItems %d exact, etaSeconds 0", describe([]timedUpdate{last}), rows)
			}
		})
	}
}

func jsonlProducts(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"sku":"P-%d","name":"Product %d","price":%d.5,"stock":%d}`+"\n", i, i, i, i)
	}
	return b.String()
}

func describe(rs []timedUpdate) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  at %v: progress %s total %s estimated %s eta %s processed %s", r.at.Round(time.Millisecond),
			show(r.u.Progress), show(r.u.TotalItems), show(r.u.TotalItemsEstimated), show(r.u.EtaSeconds), show(r.u.ProcessedItems))
	}
	return b.String()
}

func show[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// TestImportProgressXLSX checks that a sheet's dimension gives the total
// from the first report, flagged as an estimate, and that a sheet without
// one reports counts only until the exact total at the end.
func TestImportProgressXLSX(t *testing.T) {
	t.Parallel()
	const rows = 600
	sheet := [][]any{{"sku", "name", "price"}}
	for i := 1; i <= rows; i++ {
		sheet = append(sheet, []any{fmt.Sprintf("P-%d", i), fmt.Sprintf("Product %d", i), i})
	}
	withDim := xlsxDimension(t, sheet, fmt.Sprintf("A1:C%d", rows+1))
	noDim := stripDimension(t, withDim)
	cfg := loadTestConfig(t, "", "")
	for _, tc := range []struct {
		name      string
		file      []byte
		wantTotal bool // an estimated total while running
	}{
		{"with dimension", withDim, true},
		{"without dimension", noDim, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fj := newFileJob(t, "import", "product", "p.xlsx", string(tc.file), map[string]any{"dryRun": true})
			job := &reportingJob{fileJob: fj, start: time.Now()}
			if err := (&Importer{Entity: cfg.Entities["product"]}).Process(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			reports := job.all()
			first, last := reports[0].u, reports[len(reports)-1].u
			if tc.wantTotal {
				if first.TotalItems == nil || *first.TotalItems != rows || first.TotalItemsEstimated == nil || !*first.TotalItemsEstimated {
					t.Errorf("got first report %s, want totalItems %d estimated", describe(reports[:1]), rows)
				}
			} else {
				for _, r := range reports[:len(reports)-1] {
					if r.u.TotalItems != nil || r.u.Progress != nil {
						t.Errorf("got running report %s, want no total and no progress (the sheet declares no size)", describe([]timedUpdate{r}))
					}
				}
			}
			if last.TotalItems == nil || *last.TotalItems != rows || last.TotalItemsEstimated == nil || *last.TotalItemsEstimated {
				t.Errorf("got last report %s, want totalItems %d exact", describe(reports[len(reports)-1:]), rows)
			}
		})
	}
}

// xlsxDimension is a workbook of rows whose sheet declares the dimension
// ref, as Excel writes it (excelize alone leaves ref="A1").
func xlsxDimension(t *testing.T, rows [][]any, ref string) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetSheetDimension("Sheet1", ref); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := f.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripDimension returns the workbook with the <dimension> element removed
// from its sheets, as some writers leave it out.
func stripDimension(t *testing.T, xlsx []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(xlsx), int64(len(xlsx)))
	if err != nil {
		t.Fatal(err)
	}
	dim := regexp.MustCompile(`<dimension [^>]*(/>|></dimension>)`)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	found := false
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(f.Name, "xl/worksheets/") {
			found = found || dim.Match(b)
			b = dim.ReplaceAll(b, nil)
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("the workbook had no <dimension> to remove")
	}
	return out.Bytes()
}

// funcSink stores nothing: write decides what each batch gets back.
type funcSink struct {
	write func(batch []Record) ([]RecordError, error)
}

func (s funcSink) Write(_ context.Context, batch []Record) ([]RecordError, error) {
	return s.write(batch)
}
func (s funcSink) Close() error { return nil }

// TestImportResumedCountsContinue runs an import whose sink goes down after
// three batches (one record of them refused), then the next attempt from
// the checkpoint with the counts the task kept: no report of the second
// attempt goes below them (the store would refuse it), and the end counts
// the whole file, the record refused by the first attempt included.
func TestImportResumedCountsContinue(t *testing.T) {
	t.Parallel()
	const rows = 100
	cfg := loadTestConfig(t, "", "")
	batches, down := 0, true
	im := &Importer{Entity: cfg.Entities["product"], BatchSize: 10, Open: func(context.Context, *Entity) (Sink, error) {
		return funcSink{write: func(batch []Record) ([]RecordError, error) {
			batches++
			if down && batches > 3 {
				return nil, fmt.Errorf("sink down")
			}
			if batches == 2 {
				return []RecordError{{Index: 4, Message: "refused"}}, nil
			}
			return nil, nil
		}}, nil
	}}
	first := newFileJob(t, "import", "product", "p.csv", productsCSV(rows), nil)
	if err := im.Process(context.Background(), first); err == nil {
		t.Fatal("first attempt: got no error, want the sink's")
	}
	kept := first.counts()
	if kept[1] < 30 {
		t.Fatalf("got counts %v after the first attempt, want at least 30 processed", kept)
	}
	down = false
	fj := first.retry()
	fj.task.ProcessedItems, fj.task.SuccessItems, fj.task.FailedItems = kept[1], kept[2], kept[3]
	if p := first.state.Progress; p != nil {
		fj.task.Progress = *p
	}
	next := &reportingJob{fileJob: fj, start: time.Now()}
	if err := im.Process(context.Background(), next); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	for _, r := range next.all() {
		for i, c := range []*int64{r.u.ProcessedItems, r.u.SuccessItems, r.u.FailedItems} {
			if c != nil && *c < kept[i+1] {
				t.Errorf("got report %s, want no count below the task's %v", describe([]timedUpdate{r}), kept[1:])
			}
		}
		if r.u.Progress != nil && *r.u.Progress < fj.task.Progress {
			t.Errorf("got progress %.2f, want at least the task's %.2f", *r.u.Progress, fj.task.Progress)
		}
	}
	if got, want := next.counts(), [4]int64{rows, rows, rows - 1, 1}; got != want {
		t.Errorf("got counts %v, want %v (the record refused before the crash still failed)", got, want)
	}
}

// TestMeter checks the figures of a reading at given times: the estimate
// from bytes, the declared rows of a sheet, the cap at 99 and the smoothed
// time left.
func TestMeter(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name            string
		size, declared  int64
		at              time.Duration
		readBytes, rows int64
		want            reading
	}{
		{"a quarter of the bytes", 1000, 0, 10 * time.Second, 250, 50,
			reading{progress: 25, total: 200, eta: 30, hasPct: true, hasTotal: true, hasETA: true}},
		{"declared rows win over bytes", 0, 400, 10 * time.Second, 1 << 20, 100,
			reading{progress: 25, total: 400, eta: 30, hasPct: true, hasTotal: true, hasETA: true}},
		{"more rows than declared", 0, 400, 10 * time.Second, 0, 500,
			reading{progress: 99, total: 500, eta: 0, hasPct: true, hasTotal: true, hasETA: true}},
		{"size unknown", 0, 0, 10 * time.Second, 250, 50, reading{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter(t0, tc.size, tc.declared)
			if got := m.read(t0.Add(tc.at), tc.readBytes, tc.rows); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("time left is smoothed", func(t *testing.T) {
		m := newMeter(t0, 1000, 0)
		m.read(t0.Add(10*time.Second), 500, 1) // 10s left
		got := m.read(t0.Add(20*time.Second), 510, 1)
		// at 51% after 20s the rate says ~19s left; smoothed: 10 + 0.3 × (19.2 - 10)
		if got.eta != 13 {
			t.Errorf("got eta %d, want 13 (moved 30%% of the way from 10 to 19)", got.eta)
		}
	})
	t.Run("due", func(t *testing.T) {
		m := newMeter(t0, 1000, 0)
		if !m.due(t0, 0, 0) {
			t.Error("got not due before the first report, want due")
		}
		m.read(t0, 100, 1)
		if m.due(t0.Add(100*time.Millisecond), 120, 2) {
			t.Error("got due 100ms and 2 points after the last report, want not due")
		}
		if !m.due(t0.Add(100*time.Millisecond), 150, 2) {
			t.Error("got not due 5 points after the last report, want due")
		}
		if !m.due(t0.Add(progressInterval), 100, 1) {
			t.Errorf("got not due %v after the last report, want due", progressInterval)
		}
	})
}
