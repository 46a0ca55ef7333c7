package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commonops/commonops"
)

// The output formats of the task commands.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatJSONL = "jsonl"
)

// printer writes results in one format: a table for people, JSON, or JSON
// Lines (one value a line) for programs.
type printer struct {
	format string
	w      io.Writer
	color  bool // colour the status: only on a terminal
}

// newPrinter returns the printer of format, or of the default: a table on
// a terminal, JSON Lines otherwise.
func newPrinter(format string, w io.Writer) (printer, error) {
	tty := isTerminal(w)
	switch format {
	case "":
		format = formatJSONL
		if tty {
			format = formatTable
		}
	case formatTable, formatJSON, formatJSONL:
	default:
		return printer{}, fmt.Errorf("-o %q: want table, json or jsonl", format)
	}
	return printer{format: format, w: w, color: tty}, nil
}

// emit writes items: JSON (an object when single, else an array), one
// JSON line each, or a table of header and rows (tab-separated cells).
func emit[T any](p printer, items []T, single bool, header string, row func(T) string) error {
	switch p.format {
	case formatJSON:
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		if single && len(items) == 1 {
			return enc.Encode(items[0])
		}
		if items == nil {
			items = []T{}
		}
		return enc.Encode(items)
	case formatJSONL:
		enc := json.NewEncoder(p.w)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// tasks prints a list of tasks.
func (p printer) tasks(ts []commonops.Task) error {
	return emit(p, ts, false, "ID\tTYPE\tENTITY\tSTATUS\tPROGRESS\tITEMS\tCREATED", func(t commonops.Task) string {
		return strings.Join([]string{t.ID, t.TaskType, t.EntityType, p.status(t.Status),
			fmt.Sprintf("%.0f%%", t.Progress), items(&t), t.CreatedAt.Local().Format(time.DateTime)}, "\t")
	})
}

// task prints one task: in a table, one field a line.
func (p printer) task(t *commonops.Task) error {
	if p.format != formatTable {
		return emit(p, []*commonops.Task{t}, true, "", nil)
	}
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	when := func(at *time.Time) string {
		if at == nil {
			return ""
		}
		return at.Local().Format(time.DateTime)
	}
	rows := [][2]string{
		{"ID", t.ID}, {"Type", t.TaskType}, {"Entity", t.EntityType},
		{"Status", p.status(t.Status)}, {"Progress", fmt.Sprintf("%.0f%%", t.Progress)},
		{"Items", items(t)}, {"Succeeded", fmt.Sprint(t.SuccessItems)}, {"Failed", fmt.Sprint(t.FailedItems)},
		{"Message", str(t.Message)}, {"Error", str(t.ErrorMessage)},
		{"Attempt", fmt.Sprintf("%d (retries %d of %d)", t.Attempt, t.RetryCount, t.MaxRetries)},
		{"Input", str(t.FileName)}, {"Upload", string(t.UploadStatus)}, {"Output", str(t.OutputFileName)},
		{"Errors file", str(t.ErrorsFileName)}, {"Requested by", t.RequestedBy},
		{"Created", when(&t.CreatedAt)}, {"Started", when(t.StartedAt)}, {"Completed", when(t.CompletedAt)},
	}
	if t.CancelRequested {
		rows = append(rows, [2]string{"Cancel", "requested"})
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
		}
	}
	return tw.Flush()
}

// items is "processed/total", or "processed" while the total is unknown.
func items(t *commonops.Task) string {
	if t.TotalItems == nil {
		return fmt.Sprint(t.ProcessedItems)
	}
	return fmt.Sprintf("%d/%d", t.ProcessedItems, *t.TotalItems)
}

// status is s, coloured on a terminal. Every status gets an escape of the
// same length, so a table's columns stay aligned.
func (p printer) status(s commonops.Status) string {
	if !p.color {
		return string(s)
	}
	code := map[commonops.Status]int{
		commonops.StatusCompleted: 32, commonops.StatusFailed: 31,
		commonops.StatusCancelled: 33, commonops.StatusProcessing: 36,
	}[s]
	if code == 0 {
		code = 39 // the terminal's own colour
	}
	return fmt.Sprintf("\x1b[%dm%s\x1b[0m", code, s)
}

// events prints events: in a table, one line each.
func (p printer) events(es []commonops.Event) error {
	return emit(p, es, false, "", eventLine)
}

// eventLine is an event for people: time, type, the status change and any
// error.
func eventLine(e commonops.Event) string {
	var d struct {
		From, To commonops.Status
		Error    string
		Progress *float64
	}
	_ = json.Unmarshal(e.EventData, &d)
	line := e.CreatedAt.Local().Format(time.TimeOnly) + "\t" + e.EventType
	if d.From != "" && d.To != "" && d.From != d.To {
		line += fmt.Sprintf("\t%s → %s", d.From, d.To)
	} else {
		line += "\t"
	}
	if d.Progress != nil {
		line += fmt.Sprintf("\t%.0f%%", *d.Progress)
	}
	if d.Error != "" {
		line += "\t" + d.Error
	}
	return line
}

// logs prints log lines: in a table, one line each.
func (p printer) logs(ls []commonops.LogEntry) error {
	return emit(p, ls, false, "", func(l commonops.LogEntry) string {
		line := fmt.Sprintf("%s\t%s\t#%d\t%s", l.CreatedAt.Local().Format(time.TimeOnly), strings.ToUpper(string(l.Level)), l.Attempt, l.Message)
		if len(l.Details) > 0 && string(l.Details) != "null" {
			line += "\t" + string(l.Details)
		}
		return line
	})
}
