package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/bulk/tabular"
)

// ImportOptions are the params the import processor reads itself; the
// other params of an import are the entity's own (Entity.Params).
var ImportOptions = []string{"format", "delimiter", "encoding", "sheet", "columnMapping", "dryRun", "maxErrors", "onError", "results"}

// ExportOptions are the params the export processor reads itself; the
// other params of an export are the entity's own: the source's filters
// (Entity.Params).
var ExportOptions = []string{"format", "compress"}

// TaskExportParams are every param the built-in task export takes: the
// export options, its filters and columns (the optional extra columns
// TaskExtraColumns). Any other param is refused.
var TaskExportParams = []string{"format", "compress", "status", "taskType", "entityType", "startDate", "endDate", "columns"}

// TaskExtraColumns are the columns the task export adds after TaskColumns
// when params.columns names them: the task's params (its JSON) and its
// tenant.
var TaskExtraColumns = []string{"params", "tenantId"}

// CreateCheck is a create-time check of one task type: the problems of in,
// field by field, or none. operations.Service.Validators takes it.
type CreateCheck = func(in commonops.CreateInput) []commonops.FieldError

// Validators returns the create-time checks of the built-in import and
// export, by task type, for operations.Service.Validators: what Register
// would run for cfg, so a task the worker could never run is refused when it
// is created instead of failing later. They refuse an entity with no sink
// (import) or source (export), an import without fileName, an option of the
// wrong type or value (the same rules the processors apply), and params the
// entity's params schema refuses. cfg may be nil or empty: then only the
// task export is known.
func Validators(cfg *Config) map[string]CreateCheck {
	if cfg == nil {
		cfg = &Config{}
	}
	return map[string]CreateCheck{"import": cfg.checkImport, "export": cfg.checkExport}
}

// problems collects the field errors of one create.
type problems []commonops.FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, commonops.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *Config) checkImport(in commonops.CreateInput) []commonops.FieldError {
	var p problems
	e := c.Entities[in.EntityType]
	if e == nil || e.Sink == nil {
		p.add("entityType", "%s cannot be imported: %s", quoteName(in.EntityType), c.listed(func(e *Entity) bool { return e.Sink != nil }, "importable", false))
	}
	if in.FileName == nil {
		p.add("fileName", "is required: an import reads its input file")
	}
	params, ok := decodeParams(&p, in.Params)
	if !ok {
		return p
	}
	checkImportOptions(&p, params)
	if e != nil && e.Sink != nil {
		e.checkParams(&p, params, ImportOptions)
		if raw, ok := params["results"]; ok && string(raw) == "true" && e.Sink.Type != "sql" {
			p.add("params.results", "the %s sink of %s cannot tell a created record from an updated one: results need an sql sink", e.Sink.Type, quoteName(e.Name))
		}
	}
	return p
}

func (c *Config) checkExport(in commonops.CreateInput) []commonops.FieldError {
	var p problems
	params, ok := decodeParams(&p, in.Params)
	if in.EntityType == TaskEntity {
		if ok {
			checkExportOptions(&p, params)
			checkTaskParams(&p, params)
		}
		return p
	}
	e := c.Entities[in.EntityType]
	if e == nil || e.Source == nil {
		p.add("entityType", "%s cannot be exported: %s", quoteName(in.EntityType), c.listed(func(e *Entity) bool { return e.Source != nil }, "exportable", true))
	}
	if !ok {
		return p
	}
	checkExportOptions(&p, params)
	if e != nil && e.Source != nil {
		e.checkParams(&p, params, ExportOptions)
	}
	return p
}

// listed names the entities that keep, for a problem message.
func (c *Config) listed(keep func(*Entity) bool, what string, withTask bool) string {
	var names []string
	if withTask {
		names = append(names, TaskEntity)
	}
	for name, e := range c.Entities {
		if keep(e) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "no entity is configured to be " + strings.TrimSuffix(what, "able") + "ed (see the service's --config)"
	}
	sort.Strings(names)
	return "the " + what + " entities are " + strings.Join(names, ", ")
}

func quoteName(s string) string { return fmt.Sprintf("%q", commonops.Shorten(s, 64)) }

// decodeParams reads the params object; nothing or null is no params.
func decodeParams(p *problems, raw json.RawMessage) (map[string]json.RawMessage, bool) {
	params := map[string]json.RawMessage{}
	if b := bytes.TrimSpace(raw); len(b) == 0 || string(b) == "null" {
		return params, true
	}
	if err := json.Unmarshal(raw, &params); err != nil || params == nil {
		p.add("params", "must be a JSON object")
		return nil, false
	}
	return params, true
}

// checkImportOptions applies the import processor's rules to its options.
func checkImportOptions(p *problems, params map[string]json.RawMessage) {
	if v, ok := stringParam(p, params, "format"); ok {
		if _, err := tabular.ParseFormat(v); err != nil {
			p.add("params.format", "%v", err)
		}
	}
	if v, ok := stringParam(p, params, "delimiter"); ok {
		if _, err := parseDelimiter(v); err != nil {
			p.add("params.delimiter", "%v", err)
		}
	}
	if v, ok := stringParam(p, params, "encoding"); ok {
		if err := tabular.CheckEncoding(v); err != nil {
			p.add("params.encoding", "%v", err)
		}
	}
	stringParam(p, params, "sheet")
	if raw, ok := params["columnMapping"]; ok && !isNull(raw) {
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			p.add("params.columnMapping", "must be an object of file column to schema property (strings)")
		}
	}
	for _, name := range []string{"dryRun", "results"} {
		if raw, ok := params[name]; ok && !isNull(raw) {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				p.add("params."+name, "must be true or false")
			}
		}
	}
	if raw, ok := params["maxErrors"]; ok && !isNull(raw) {
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > math.MaxInt32 {
			p.add("params.maxErrors", "must be an integer from 0 (no limit) to %d", math.MaxInt32)
		}
	}
	if v, ok := stringParam(p, params, "onError"); ok && v != "" && v != "skip" && v != "abort" {
		p.add("params.onError", "%s (want skip or abort)", quoteName(v))
	}
}

// checkExportOptions applies the export processor's rules to its options.
func checkExportOptions(p *problems, params map[string]json.RawMessage) {
	if v, ok := stringParam(p, params, "format"); ok {
		if _, err := tabular.ParseFormat(v); err != nil {
			p.add("params.format", "%v", err)
		}
	}
	if v, ok := stringParam(p, params, "compress"); ok && v != "" && v != "gzip" {
		p.add("params.compress", "%s (want gzip or nothing)", quoteName(v))
	}
}

// checkTaskParams applies the task export's rules to its filters and
// columns, and refuses any other param.
func checkTaskParams(p *problems, params map[string]json.RawMessage) {
	var unknown []string
	for k := range params {
		if !slices.Contains(TaskExportParams, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		p.add("params."+commonops.Shorten(k, 64), "is not a param of the task export (it takes %s)", strings.Join(TaskExportParams, ", "))
	}
	stringParam(p, params, "taskType")
	stringParam(p, params, "entityType")
	if raw, ok := params["status"]; ok && !isNull(raw) {
		var one string
		var list []string
		if json.Unmarshal(raw, &one) == nil {
			list = strings.Split(one, ",")
		} else if json.Unmarshal(raw, &list) != nil {
			p.add("params.status", "must be a status, a comma list of statuses or a list of statuses")
		}
		for _, st := range list {
			if err := checkStatus(strings.TrimSpace(st)); err != nil {
				p.add("params.status", "%v", err)
			}
		}
	}
	for _, k := range []string{"startDate", "endDate"} {
		if v, ok := stringParam(p, params, k); ok && v != "" {
			if _, err := parseDate(v); err != nil {
				p.add("params."+k, "%v", err)
			}
		}
	}
	if raw, ok := params["columns"]; ok && !isNull(raw) {
		if _, err := parseTaskColumns(raw); err != nil {
			p.add("params.columns", "%v", err)
		}
	}
}

// checkParams validates the entity's own params (params without the
// processor's options) against its params schema.
func (e *Entity) checkParams(p *problems, params map[string]json.RawMessage, options []string) {
	if e.Params == nil {
		return
	}
	own := map[string]any{}
	for k, raw := range params {
		if slices.Contains(options, k) {
			continue
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			p.add("params."+commonops.Shorten(k, 64), "is not valid JSON")
			continue
		}
		own[k] = v
	}
	err := e.Params.Validate(own)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		if err != nil {
			p.add("params", "%v", err)
		}
		return
	}
	for _, v := range leafErrors(ve) {
		field := strings.Join(append([]string{"params"}, v.InstanceLocation...), ".")
		switch k := v.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				p.add(field+"."+m, "is required (the params schema of entity %s)", e.Name)
			}
		case *kind.AdditionalProperties:
			for _, name := range k.Properties {
				p.add(field+"."+commonops.Shorten(name, 64), "is not a param of entity %s", e.Name)
			}
		default:
			p.add(field, "%s", v.ErrorKind.LocalizedString(printer))
		}
	}
}

// stringParam returns the string param k; a param of another type is a
// problem. ok is false when the param is absent, null or not a string.
func stringParam(p *problems, params map[string]json.RawMessage, k string) (string, bool) {
	raw, found := params[k]
	if !found || isNull(raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.add("params."+k, "must be a string")
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// parseDelimiter reads params.delimiter: one character other than a quote
// or a line break, or \t or tab; 0 for "" (the default comma).
func parseDelimiter(s string) (rune, error) {
	switch s {
	case "":
		return 0, nil
	case `\t`, "tab":
		return '\t', nil
	}
	r, n := utf8.DecodeRuneInString(s)
	if n != len(s) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
		return 0, fmt.Errorf("%q is not one character other than a quote or a line break", s)
	}
	return r, nil
}

func checkStatus(st string) error {
	if st != "" && !commonops.Status(st).Valid() {
		return fmt.Errorf("unknown status %q", commonops.Shorten(st, 32))
	}
	return nil
}

// parseDate reads a date filter: RFC 3339 or YYYY-MM-DD.
func parseDate(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err == nil {
		return t, nil
	}
	if t, err = time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date", commonops.Shorten(v, 64))
}

// parseTaskColumns reads params.columns of the task export: a list of
// TaskExtraColumns.
func parseTaskColumns(raw json.RawMessage) ([]string, error) {
	var cols []string
	if err := json.Unmarshal(raw, &cols); err != nil {
		return nil, fmt.Errorf("must be a list of the extra columns %s", strings.Join(TaskExtraColumns, ", "))
	}
	for _, c := range cols {
		if !slices.Contains(TaskExtraColumns, c) {
			return nil, fmt.Errorf("unknown column %q (the extra columns are %s)", commonops.Shorten(c, 64), strings.Join(TaskExtraColumns, ", "))
		}
	}
	return cols, nil
}
