package bulk

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/commonops/commonops"
)

// validateYAML configures product (import and export, with a params
// schema), ledger (export only) and inbox (import only).
const validateYAML = `
entities:
  product:
    schema: {type: object, properties: {sku: {type: string}}, required: [sku]}
    key: [sku]
    params:
      type: object
      properties:
        category: {type: string, enum: [fruit, veg]}
        minPrice: {type: number, minimum: 0}
      additionalProperties: false
    import:
      sink: {type: http, url: "http://catalog/batch"}
    export:
      source: {type: sql, driver: sqlite, dsn: ./products.db, query: "SELECT sku FROM products WHERE category = :category"}
  ledger:
    schema: {type: object, properties: {id: {type: string}}}
    export:
      source: {type: http, url: "http://ledger/items"}
  inbox:
    schema: {type: object, properties: {id: {type: string}}}
    import:
      sink: {type: http, url: "http://inbox/batch"}
`

// Every import or export the worker could never run is refused with the
// field and the reason; what it can run passes.
func TestValidators(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(validateYAML), "validate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := Validators(cfg)
	file := "products.csv"
	for _, tt := range []struct {
		name     string
		taskType string
		entity   string
		file     *string
		params   string
		want     []commonops.FieldError
	}{
		{"import ok", "import", "product", &file, `{"format":"csv","dryRun":true,"maxErrors":10,"onError":"abort","delimiter":";","encoding":"latin1","columnMapping":{"SKU":"sku"},"category":"fruit"}`, nil},
		{"import no params", "import", "inbox", &file, ``, nil},
		{"export ok", "export", "product", nil, `{"format":"jsonl","compress":"gzip","category":"veg","minPrice":1.5}`, nil},
		{"task export ok", "export", "task", nil, `{"status":["pending","failed"],"taskType":"import","startDate":"2026-01-01","endDate":"2026-02-01T00:00:00Z","columns":["params","tenantId"]}`, nil},
		{"task export status list", "export", "task", nil, `{"status":"completed,failed"}`, nil},

		{"import unknown entity", "import", "prodcut", &file, `{}`, []commonops.FieldError{
			{Field: "entityType", Message: `"prodcut" cannot be imported: the importable entities are inbox, product`}}},
		{"import of an export-only entity", "import", "ledger", &file, `{}`, []commonops.FieldError{
			{Field: "entityType", Message: `"ledger" cannot be imported: the importable entities are inbox, product`}}},
		{"import of the task history", "import", "task", &file, `{}`, []commonops.FieldError{
			{Field: "entityType", Message: `"task" cannot be imported: the importable entities are inbox, product`}}},
		{"export unknown entity", "export", "orders", nil, `{}`, []commonops.FieldError{
			{Field: "entityType", Message: `"orders" cannot be exported: the exportable entities are ledger, product, task`}}},
		{"export of an import-only entity", "export", "inbox", nil, `{}`, []commonops.FieldError{
			{Field: "entityType", Message: `"inbox" cannot be exported: the exportable entities are ledger, product, task`}}},
		{"import results of a wrong type", "import", "product", &file, `{"results":"yes"}`, []commonops.FieldError{
			{Field: "params.results", Message: "must be true or false"}}},
		{"import results from an http sink", "import", "product", &file, `{"results":true}`, []commonops.FieldError{
			{Field: "params.results", Message: `the http sink of "product" cannot tell a created record from an updated one: results need an sql sink`}}},
		{"import without a file", "import", "product", nil, `{}`, []commonops.FieldError{
			{Field: "fileName", Message: "is required: an import reads its input file"}}},
		{"import unknown format", "import", "product", &file, `{"format":"pdf"}`, []commonops.FieldError{
			{Field: "params.format", Message: `unknown format "pdf" (want csv, jsonl or xlsx)`}}},
		{"export unknown format", "export", "product", nil, `{"format":"pdf"}`, []commonops.FieldError{
			{Field: "params.format", Message: `unknown format "pdf" (want csv, jsonl or xlsx)`}}},
		{"task export unknown format", "export", "task", nil, `{"format":"pdf"}`, []commonops.FieldError{
			{Field: "params.format", Message: `unknown format "pdf" (want csv, jsonl or xlsx)`}}},
		{"format not a string", "import", "product", &file, `{"format":1}`, []commonops.FieldError{
			{Field: "params.format", Message: "must be a string"}}},
		{"dryRun a string", "import", "product", &file, `{"dryRun":"yes"}`, []commonops.FieldError{
			{Field: "params.dryRun", Message: "must be true or false"}}},
		{"maxErrors a string", "import", "product", &file, `{"maxErrors":"10"}`, []commonops.FieldError{
			{Field: "params.maxErrors", Message: "must be an integer from 0 (no limit) to 2147483647"}}},
		{"maxErrors negative", "import", "product", &file, `{"maxErrors":-1}`, []commonops.FieldError{
			{Field: "params.maxErrors", Message: "must be an integer from 0 (no limit) to 2147483647"}}},
		{"maxErrors a fraction", "import", "product", &file, `{"maxErrors":1.5}`, []commonops.FieldError{
			{Field: "params.maxErrors", Message: "must be an integer from 0 (no limit) to 2147483647"}}},
		{"onError a number", "import", "product", &file, `{"onError":1}`, []commonops.FieldError{
			{Field: "params.onError", Message: "must be a string"}}},
		{"onError unknown", "import", "product", &file, `{"onError":"ignore"}`, []commonops.FieldError{
			{Field: "params.onError", Message: `"ignore" (want skip or abort)`}}},
		{"delimiter two characters", "import", "product", &file, `{"delimiter":";;"}`, []commonops.FieldError{
			{Field: "params.delimiter", Message: `";;" is not one character other than a quote or a line break`}}},
		{"encoding unknown", "import", "product", &file, `{"encoding":"ebcdic"}`, []commonops.FieldError{
			{Field: "params.encoding", Message: `unknown encoding "ebcdic" (want utf-8, latin1 or windows-1252)`}}},
		{"columnMapping not strings", "import", "product", &file, `{"columnMapping":{"SKU":1}}`, []commonops.FieldError{
			{Field: "params.columnMapping", Message: "must be an object of file column to schema property (strings)"}}},
		{"compress unknown", "export", "product", nil, `{"compress":"zip"}`, []commonops.FieldError{
			{Field: "params.compress", Message: `"zip" (want gzip or nothing)`}}},
		{"params schema enum", "export", "product", nil, `{"category":"meat"}`, []commonops.FieldError{
			{Field: "params.category", Message: `value must be one of 'fruit', 'veg'`}}},
		{"params schema type", "export", "product", nil, `{"minPrice":"cheap"}`, []commonops.FieldError{
			{Field: "params.minPrice", Message: "got string, want number"}}},
		{"params schema unknown param", "export", "product", nil, `{"colour":"red"}`, []commonops.FieldError{
			{Field: "params.colour", Message: "is not a param of entity product"}}},
		{"params schema on import", "import", "product", &file, `{"category":"meat"}`, []commonops.FieldError{
			{Field: "params.category", Message: `value must be one of 'fruit', 'veg'`}}},
		{"task export unknown status", "export", "task", nil, `{"status":"sleeping"}`, []commonops.FieldError{
			{Field: "params.status", Message: `unknown status "sleeping"`}}},
		{"task export bad date", "export", "task", nil, `{"startDate":"yesterday"}`, []commonops.FieldError{
			{Field: "params.startDate", Message: `"yesterday" is not an RFC 3339 time or a date`}}},
		{"task export unknown param", "export", "task", nil, `{"stauts":"failed"}`, []commonops.FieldError{
			{Field: "params.stauts", Message: "is not a param of the task export (it takes format, compress, status, taskType, entityType, startDate, endDate, columns)"}}},
		{"task export unknown column", "export", "task", nil, `{"columns":["secret"]}`, []commonops.FieldError{
			{Field: "params.columns", Message: `unknown column "secret" (the extra columns are params, tenantId)`}}},
		{"several problems at once", "import", "nope", nil, `{"format":"pdf","dryRun":1}`, []commonops.FieldError{
			{Field: "entityType", Message: `"nope" cannot be imported: the importable entities are inbox, product`},
			{Field: "fileName", Message: "is required: an import reads its input file"},
			{Field: "params.format", Message: `unknown format "pdf" (want csv, jsonl or xlsx)`},
			{Field: "params.dryRun", Message: "must be true or false"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := commonops.CreateInput{TaskType: tt.taskType, EntityType: tt.entity, FileName: tt.file, Params: json.RawMessage(tt.params)}
			got := checks[tt.taskType](in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Without a configuration only the task export is known, and the message
// says that nothing is configured.
func TestValidatorsWithoutConfig(t *testing.T) {
	t.Parallel()
	checks := Validators(nil)
	file := "x.csv"
	got := checks["import"](commonops.CreateInput{TaskType: "import", EntityType: "product", FileName: &file})
	want := []commonops.FieldError{{Field: "entityType", Message: `"product" cannot be imported: no entity is configured to be imported (see the service's --config)`}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := checks["export"](commonops.CreateInput{TaskType: "export", EntityType: "task"}); len(got) != 0 {
		t.Errorf("got %+v for the task export, want none", got)
	}
}

// A params schema that does not compile stops the configuration, naming
// the entity and the key.
func TestParamsSchemaErrors(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
entities:
  product:
    schema: {type: object, properties: {sku: {type: string}}}
    params: {type: 12}
`), "bad.yaml")
	if err == nil || !strings.Contains(err.Error(), "entity product: params: schema") {
		t.Errorf("got %v, want an error naming entity product's params schema", err)
	}
}
