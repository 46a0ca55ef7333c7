// Package bulk is commonops' built-in import and export: an entity registry
// read from YAML, an import processor that streams a CSV, JSON Lines or XLSX
// file through schema validation into a sink (HTTP or SQL), and an export
// processor that streams a source (SQL, HTTP or the task history itself)
// into a CSV, JSON Lines or XLSX file. Register wires both into a
// worker.Registry; Importer and Exporter are the Go API for custom sinks and
// sources.
package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/commonops/commonops/bulk/tabular"
	"go.yaml.in/yaml/v3"
)

// TaskEntity is the built-in entity whose export is the task history of the
// job's tenant; it needs no configuration and cannot be configured.
const TaskEntity = "task"

// Config is the entity registry: what each entityType's records look like
// and where they are imported to and exported from.
type Config struct {
	// Path is the file the configuration was read from.
	Path string
	// Entities by entityType.
	Entities map[string]*Entity
}

// Entity is one configured entityType.
type Entity struct {
	Name string
	// Schema validates one record (JSON Schema 2020-12).
	Schema *jsonschema.Schema
	// Fields are the schema's top-level properties with the types cells are
	// coerced to.
	Fields map[string]Field
	// Required lists the schema's required properties: a file without one of
	// these columns is refused before any row is read.
	Required []string
	// Key is the natural key the sinks upsert on.
	Key []string
	// Columns is the output column order. Defaults to the key, then the
	// other schema properties in name order.
	Columns []string
	// Sink is where imports go; nil when the entity cannot be imported.
	Sink *SinkConfig
	// Source is where exports come from; nil when it cannot be exported.
	Source *SourceConfig
	// Limits bound what an import reads and writes (the settings of the
	// entity's import block). Zero fields take their defaults.
	Limits Limits
	// KeepFormulas is export.neutralizeFormulas: false. Its CSV and XLSX
	// exports then write text that starts with = + - @, a tab or a carriage
	// return as it is, and its imports store a leading quote before such a
	// character as it is. By default exports neutralise such text with a
	// leading quote and imports drop that quote (tabular.Neutralize).
	KeepFormulas bool
	// Params validates the entity's own task params (JSON Schema 2020-12):
	// the params of its import and export tasks without the processors'
	// options (ImportOptions, ExportOptions), checked when the task is
	// created. Nil when the entity declares none.
	Params *jsonschema.Schema

	// fast checks records without the general validator when the schema
	// stays within the common subset; nil otherwise.
	fast *fastSchema
}

// SinkConfig is an entity's `import.sink`.
type SinkConfig struct {
	// Type is http or sql.
	Type string `yaml:"type"`
	// BatchSize is the most records that go in one request (http) or
	// transaction (sql). An sql sink sizes its batches from the data
	// within it: up to SQLBatchBytes of input, so a file of short rows
	// goes in large COPYs and one of wide rows in smaller ones. Defaults
	// to BatchSizeDefault (http) and SQLBatchSizeDefault (sql).
	BatchSize int `yaml:"batchSize"`

	// URL receives POST {"records": [...]} (http).
	URL string `yaml:"url"`
	// Headers are sent with each request, values env-expanded (http).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one request (http). Defaults to HTTPTimeoutDefault.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a batch is retried after a 5xx, a 429 or a
	// network error (http). Defaults to RetriesDefault; -1 for none.
	Retries int `yaml:"retries"`
	// Backoff is the first delay between retries, doubled each time (http).
	// Defaults to BackoffDefault.
	Backoff time.Duration `yaml:"backoff"`

	// Driver is postgres or sqlite (sql).
	Driver string `yaml:"driver"`
	// DSN is the database address, env-expanded (sql).
	DSN string `yaml:"dsn"`
	// Table is upserted on the entity's key (sql).
	Table string `yaml:"table"`
	// CreateTable creates the table from the schema when it is missing, with
	// the key as primary key (sql). Defaults to false.
	CreateTable bool `yaml:"createTable"`
}

// SourceConfig is an entity's `export.source`.
type SourceConfig struct {
	// Type is sql or http.
	Type string `yaml:"type"`
	// PageSize is how many records one page holds. Defaults to PageSizeDefault.
	PageSize int `yaml:"pageSize"`

	// Driver is postgres or sqlite (sql).
	Driver string `yaml:"driver"`
	// DSN is the database address, env-expanded (sql).
	DSN string `yaml:"dsn"`
	// Query selects the records; :name placeholders are bound from the
	// task's params (NULL when absent) (sql).
	Query string `yaml:"query"`
	// Keyset is a unique column the query is paged on; without it the
	// query is streamed in one go (sql).
	Keyset string `yaml:"keyset"`

	// URL answers GET with a page of records (http).
	URL string `yaml:"url"`
	// Headers are sent with each request, values env-expanded (http).
	Headers map[string]string `yaml:"headers"`
	// Paging is cursor or page (http). Defaults to cursor.
	Paging string `yaml:"paging"`
	// ItemsField holds the page's records. Defaults to "items".
	ItemsField string `yaml:"itemsField"`
	// CursorField holds the next cursor, empty or absent on the last page;
	// it is sent back as the "cursor" query parameter. Defaults to "nextCursor".
	CursorField string `yaml:"cursorField"`
	// TotalField holds the total count, when the endpoint offers one.
	// Defaults to "total".
	TotalField string `yaml:"totalField"`
	// Timeout bounds one request (http). Defaults to HTTPTimeoutDefault.
	Timeout time.Duration `yaml:"timeout"`
}

// Limits bound what one import may read and write, so that a hostile or
// broken file fails at once, naming the setting, instead of exhausting
// memory. They are the keys of an entity's import block; zero fields take
// their defaults. The reader limits are tabular.Limits.
type Limits struct {
	tabular.Limits `yaml:",inline"`
	// MaxErrorRowBytes bounds what errors.csv keeps of one bad row's cells
	// (or JSON Lines source): the rest is cut and marked. Defaults to
	// MaxErrorRowBytesDefault (4 KiB).
	MaxErrorRowBytes int64 `yaml:"maxErrorRowBytes"`
	// MaxErrorsBytes bounds errors.csv: later bad rows are counted but not
	// written, and a last line says how many. Defaults to
	// MaxErrorsBytesDefault (64 MiB).
	MaxErrorsBytes int64 `yaml:"maxErrorsBytes"`
}

// The defaults of the errors.csv limits: a bad row of a few dozen columns
// is kept whole, and errors.csv holds several hundred thousand such rows.
const (
	MaxErrorRowBytesDefault = 4 << 10
	MaxErrorsBytesDefault   = 64 << 20
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	l.Limits = l.Limits.WithDefaults()
	if l.MaxErrorRowBytes == 0 {
		l.MaxErrorRowBytes = MaxErrorRowBytesDefault
	}
	if l.MaxErrorsBytes == 0 {
		l.MaxErrorsBytes = MaxErrorsBytesDefault
	}
	return l
}

// Check refuses a negative limit, naming its setting.
func (l Limits) Check() error {
	if l.MaxErrorRowBytes < 0 {
		return fmt.Errorf("maxErrorRowBytes: must be 0 (the default) or more, not %d", l.MaxErrorRowBytes)
	}
	if l.MaxErrorsBytes < 0 {
		return fmt.Errorf("maxErrorsBytes: must be 0 (the default) or more, not %d", l.MaxErrorsBytes)
	}
	return l.Limits.Check()
}

// Batch and page defaults. An sql sink's batch is bounded by rows and by
// bytes, whichever comes first: at SQLBatchSizeDefault rows of a typical
// 100-byte row, or SQLBatchBytes of wider ones, one COPY and one commit
// carry enough rows that the round trip and the commit no longer show.
// Two batches are in memory at a time (one stored while the next fills),
// which SQLBatchBytes keeps within the import's memory bound.
const (
	BatchSizeDefault    = 500
	SQLBatchSizeDefault = 20_000
	SQLBatchBytes       = 4 << 20
	PageSizeDefault     = 1000
	HTTPTimeoutDefault  = 30 * time.Second
	RetriesDefault      = 5
)

type fileConfig struct {
	Entities map[string]struct {
		Schema  yaml.Node `yaml:"schema"`
		Params  yaml.Node `yaml:"params"`
		Key     []string  `yaml:"key"`
		Columns []string  `yaml:"columns"`
		Import  *struct {
			Sink   *SinkConfig `yaml:"sink"`
			Limits Limits      `yaml:",inline"`
		} `yaml:"import"`
		Export *struct {
			Source             *SourceConfig `yaml:"source"`
			NeutralizeFormulas *bool         `yaml:"neutralizeFormulas"`
		} `yaml:"export"`
	} `yaml:"entities"`
}

// LoadConfig reads the entity registry from the YAML file at path (its
// `entities` key; other keys are left to the rest of the service). Every
// schema is compiled now, so a broken one stops the service at start-up with
// the file, the entity and the reason.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bulk config: %w", err)
	}
	return ParseConfig(b, path)
}

// ParseConfig is LoadConfig of YAML already read; path names it in errors
// and is where schema files are looked up from.
func ParseConfig(b []byte, path string) (*Config, error) {
	var fc fileConfig
	if err := yaml.Unmarshal(b, &fc); err != nil {
		return nil, fmt.Errorf("bulk config %s: %w", path, err)
	}
	cfg := &Config{Path: path, Entities: make(map[string]*Entity)}
	for name, fe := range fc.Entities {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("bulk config %s: entity %s: %s", path, name, fmt.Sprintf(format, args...))
		}
		if name == TaskEntity {
			return nil, fail("the name %q is reserved for the built-in task export", TaskEntity)
		}
		e := &Entity{Name: name, Key: fe.Key, Columns: fe.Columns}
		if err := e.loadSchema(filepath.Dir(path), &fe.Schema); err != nil {
			return nil, fail("%v", err)
		}
		if fe.Params.Kind != 0 {
			sch, _, err := compileSchema(filepath.Dir(path), &fe.Params, "mem:///entities/"+name+".params.schema.json")
			if err != nil {
				return nil, fail("params: %v", err)
			}
			e.Params = sch
		}
		for _, k := range e.Key {
			if _, ok := e.Fields[k]; !ok {
				return nil, fail("key column %q is not a property of the schema", k)
			}
		}
		if len(e.Columns) == 0 {
			e.Columns = defaultColumns(e)
		}
		if fe.Import != nil {
			if err := fe.Import.Limits.Check(); err != nil {
				return nil, fail("import.%v", err)
			}
			e.Limits = fe.Import.Limits
		}
		if fe.Import != nil && fe.Import.Sink != nil {
			e.Sink = fe.Import.Sink
			if err := e.checkSink(); err != nil {
				return nil, fail("import.sink: %v", err)
			}
		}
		if fe.Export != nil && fe.Export.NeutralizeFormulas != nil {
			e.KeepFormulas = !*fe.Export.NeutralizeFormulas
		}
		if fe.Export != nil && fe.Export.Source != nil {
			e.Source = fe.Export.Source
			if err := checkSource(e.Source); err != nil {
				return nil, fail("export.source: %v", err)
			}
		}
		cfg.Entities[name] = e
	}
	return cfg, nil
}

func defaultColumns(e *Entity) []string {
	cols := slices.Clone(e.Key)
	var rest []string
	for name := range e.Fields {
		if !slices.Contains(cols, name) {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(cols, rest...)
}

func (e *Entity) checkSink() error {
	s := e.Sink
	s.DSN = os.ExpandEnv(s.DSN)
	s.URL = os.ExpandEnv(s.URL)
	for k, v := range s.Headers {
		s.Headers[k] = os.ExpandEnv(v)
	}
	switch s.Type {
	case "http":
		if s.URL == "" {
			return errors.New("an http sink needs a url")
		}
	case "sql":
		if err := checkDriver(s.Driver, s.DSN); err != nil {
			return err
		}
		if !validIdent(s.Table) {
			return fmt.Errorf("table %q is not a plain SQL name", s.Table)
		}
		if len(e.Key) == 0 {
			return errors.New("an sql sink upserts on the entity's key: set key")
		}
		for _, c := range e.Columns {
			if !validIdent(c) {
				return fmt.Errorf("column %q is not a plain SQL name", c)
			}
		}
	default:
		return fmt.Errorf("unknown type %q (want http or sql)", s.Type)
	}
	return nil
}

func checkSource(s *SourceConfig) error {
	s.DSN = os.ExpandEnv(s.DSN)
	s.URL = os.ExpandEnv(s.URL)
	for k, v := range s.Headers {
		s.Headers[k] = os.ExpandEnv(v)
	}
	switch s.Type {
	case "sql":
		if err := checkDriver(s.Driver, s.DSN); err != nil {
			return err
		}
		if strings.TrimSpace(s.Query) == "" {
			return errors.New("an sql source needs a query")
		}
		if s.Keyset != "" && !validIdent(s.Keyset) {
			return fmt.Errorf("keyset %q is not a plain SQL name", s.Keyset)
		}
	case "http":
		if s.URL == "" {
			return errors.New("an http source needs a url")
		}
		if s.Paging != "" && s.Paging != "cursor" && s.Paging != "page" {
			return fmt.Errorf("unknown paging %q (want cursor or page)", s.Paging)
		}
	default:
		return fmt.Errorf("unknown type %q (want sql or http)", s.Type)
	}
	return nil
}

func checkDriver(driver, dsn string) error {
	if driver != "postgres" && driver != "sqlite" {
		return fmt.Errorf("unknown driver %q (want postgres or sqlite)", driver)
	}
	if dsn == "" {
		return errors.New("a dsn is needed")
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

// loadSchema compiles the entity's record schema: inline (a YAML mapping
// or a JSON string) or a file path relative to the configuration's
// directory.
func (e *Entity) loadSchema(dir string, n *yaml.Node) error {
	if n.Kind == 0 {
		return errors.New("schema is missing")
	}
	sch, doc, err := compileSchema(dir, n, "mem:///entities/"+e.Name+".schema.json")
	if err != nil {
		return err
	}
	e.Schema = sch
	e.fast = compileFast(doc)
	e.Fields, e.Required = fieldsOf(doc)
	return nil
}

// compileSchema compiles the JSON Schema in n: inline (a YAML mapping or a
// JSON string, known as inlineLoc) or a file path relative to dir. It
// returns the schema and the document it was compiled from.
func compileSchema(dir string, n *yaml.Node, inlineLoc string) (*jsonschema.Schema, any, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	var loc string
	var doc any
	switch {
	case n.Kind == yaml.ScalarNode && !strings.HasPrefix(strings.TrimSpace(n.Value), "{"):
		p := n.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, fmt.Errorf("schema: %w", err)
		}
		defer f.Close()
		doc, err = jsonschema.UnmarshalJSON(f)
		if err != nil {
			return nil, nil, fmt.Errorf("schema %s: %w", p, err)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, fmt.Errorf("schema %s: %w", p, err)
		}
		loc = abs
	default:
		var raw []byte
		if n.Kind == yaml.ScalarNode {
			raw = []byte(n.Value)
		} else {
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, nil, fmt.Errorf("schema: %w", err)
			}
			var err error
			if raw, err = json.Marshal(v); err != nil {
				return nil, nil, fmt.Errorf("schema: %w", err)
			}
		}
		var err error
		doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, nil, fmt.Errorf("schema (inline): %w", err)
		}
		loc = inlineLoc
	}
	if err := c.AddResource(loc, doc); err != nil {
		return nil, nil, fmt.Errorf("schema %s: %w", loc, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s does not compile: %w", loc, err)
	}
	return sch, doc, nil
}
