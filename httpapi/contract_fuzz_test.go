package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// The contract fuzzer's knobs. By default each store gets
// contractFuzzDefault of requests from a fresh random seed; a longer local
// run sets -contractfuzz.time (or COMMONOPS_CONTRACT_FUZZ_TIME), and a
// failure is replayed with the -contractfuzz.seed and -contractfuzz.n it
// reports.
var (
	contractFuzzTime = flag.Duration("contractfuzz.time", 0, "how long TestContractFuzz fuzzes each store (default 8s, 2s with -short; env COMMONOPS_CONTRACT_FUZZ_TIME)")
	contractFuzzN    = flag.Int("contractfuzz.n", 0, "stop TestContractFuzz after this many requests per store (0: no limit)")
	contractFuzzSeed = flag.Uint64("contractfuzz.seed", 0, "seed of TestContractFuzz (0: a random one, logged)")
)

const contractFuzzDefault = 8 * time.Second

// TestContractFuzz is a stateful fuzzer driven by openapi.json: it picks
// operations of the document at random, builds each request from the
// operation's parameters and request body schema (valid values, boundary
// and huge numbers, wrong types, overlong and odd strings, bad identity,
// idempotency and trace headers, missing and extra fields, broken JSON),
// and sends it to a real server on each store. It keeps the tasks it
// created (their ids, tenants, attempts, upload URLs) so that deeper routes
// get real ids and the right attempt, and uploads files to the URLs it is
// handed. Any 5xx, any status the document does not list for the
// operation, or a body that does not match its documented schema fails the
// test, with the request and the seed that reproduce it.
func TestContractFuzz(t *testing.T) {
	t.Parallel()
	d := *contractFuzzTime
	if d == 0 {
		if env, err := time.ParseDuration(os.Getenv("COMMONOPS_CONTRACT_FUZZ_TIME")); err == nil {
			d = env
		}
	}
	if d == 0 {
		d = contractFuzzDefault
		if testing.Short() {
			d = 2 * time.Second
		}
	}
	seed := *contractFuzzSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	sp := loadSpec(t)
	eachStore(t, func(t *testing.T, st store.Store) {
		f := &fuzzer{t: t, spec: sp, env: newEnv(t, st, func(c *Config) { c.Logger = discard }), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
			seed: seed, seen: map[string]bool{}, counts: map[string]int{}}
		f.run(time.Now().Add(d), *contractFuzzN)
	})
}

// fuzzer is one run against one server.
type fuzzer struct {
	t    *testing.T
	spec *spec
	env  *env
	rng  *rand.Rand
	seed uint64
	n    int // requests sent so far

	tasks   []*fuzzTask
	deleted []string // ids of tasks deleted through the API: a 404 each
	seen    map[string]bool
	counts  map[string]int // "operationId status" -> answers, for the log
	failed  int
}

// fuzzTask is what the fuzzer knows of a task it created.
type fuzzTask struct {
	id, tenant, status string
	attempt            int
	fileSize           int64
	uploadURL          string
	uploadHeaders      map[string]string
	outputName         string // a file put to an output URL, to report
}

// tenants the fuzzer's tasks belong to; identity headers pick among them.
var fuzzTenants = []string{"", "default", "acme", "globex"}

// request is one generated request, kept whole to report it.
type request struct {
	op      *operation
	task    *fuzzTask // the task of {id}, nil for none or an unknown id
	method  string
	path    string
	query   url.Values
	header  http.Header
	body    []byte
	hasBody bool
	stream  bool // an event stream: read only the head
}

func (f *fuzzer) run(deadline time.Time, limit int) {
	for time.Now().Before(deadline) && (limit == 0 || f.n < limit) && f.failed < 20 {
		op := f.pick()
		req := f.build(op)
		f.n++
		status, ct, body := f.send(req)
		f.counts[op.id+" "+strconv.Itoa(status)]++
		var bad []string
		if status >= 500 {
			bad = append(bad, fmt.Sprintf("server error %d", status))
		}
		if !req.stream || status != http.StatusOK {
			bad = append(bad, f.spec.validateResponse(op, status, ct, body)...)
		} else if !op.documents(status) {
			bad = append(bad, fmt.Sprintf("status %d is not documented", status))
		}
		if len(bad) > 0 {
			f.report(req, status, body, bad)
		}
		f.learn(req, status, body)
	}
	keys := sortedKeys(f.counts)
	var sum strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sum, "%s=%d ", k, f.counts[k])
	}
	f.t.Logf("seed %d: %d requests, %d tasks; answers: %s", f.seed, f.n, len(f.tasks), sum.String())
}

// report fails the test once per operation, status and problem.
func (f *fuzzer) report(req request, status int, body []byte, bad []string) {
	key := fmt.Sprintf("%s %d %s", req.op.id, status, firstWords(bad[0]))
	if f.seen[key] {
		return
	}
	f.seen[key] = true
	f.failed++
	u := req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var hdr strings.Builder
	for _, k := range sortedKeys(req.header) {
		for _, v := range req.header[k] {
			fmt.Fprintf(&hdr, "\n  %s: %q", k, commonops.Shorten(v, 200))
		}
	}
	f.t.Errorf("%s: %s\nrequest #%d (reproduce: go test ./httpapi -run 'TestContractFuzz/%s' -contractfuzz.seed=%d -contractfuzz.n=%d):\n%s %s%s\n  body %q\nresponse %d: %s",
		req.op, strings.Join(bad, "; "), f.n, f.t.Name()[strings.LastIndex(f.t.Name(), "/")+1:], f.seed, f.n,
		req.method, commonops.Shorten(u, 500), hdr.String(), commonops.Shorten(string(req.body), 500), status, commonops.Shorten(string(body), 500))
}

func firstWords(s string) string {
	if i := strings.IndexAny(s, "0123456789\""); i > 0 {
		return s[:i]
	}
	return s
}

// pick chooses the next operation: mostly creates while there are few
// tasks, otherwise any operation of the document.
func (f *fuzzer) pick() *operation {
	if len(f.tasks) < 4 || f.rng.IntN(8) == 0 {
		for _, op := range f.spec.ops {
			if op.id == "createTask" {
				return op
			}
		}
	}
	return f.spec.ops[f.rng.IntN(len(f.spec.ops))]
}

// chance is true with probability 1/n.
func (f *fuzzer) chance(n int) bool { return f.rng.IntN(n) == 0 }

func (f *fuzzer) build(op *operation) request {
	req := request{op: op, method: op.method, path: op.path, query: url.Values{}, header: http.Header{}}
	tenant := fuzzTenants[f.rng.IntN(len(fuzzTenants))]
	if strings.Contains(op.path, "{id}") {
		id := f.taskID(&req, op)
		if req.task != nil && !f.chance(10) {
			tenant = req.task.tenant
		}
		req.path = strings.Replace(req.path, "{id}", id, 1)
	}
	if tenant != "" {
		req.header.Set("X-Tenant-Id", tenant)
	}
	for _, p := range op.params {
		switch p.in {
		case "query":
			if f.chance(2) {
				req.query.Set(p.name, f.paramValue(p, req.task))
			}
		case "header":
			if p.name != "X-Tenant-Id" && (f.chance(3) && (p.name != "Idempotency-Key" || f.chance(3)) || p.required) {
				req.header.Set(p.name, f.headerValue(p))
			}
		}
	}
	if (op.id == "listEvents" || op.id == "listTenantEvents") && f.chance(3) {
		req.header.Set("Accept", "text/event-stream")
		req.stream = true
	}
	f.oddHeaders(&req)
	if op.body != nil {
		req.hasBody = true
		req.body = f.body(op, req.task)
	} else if f.chance(20) {
		req.hasBody = true // a body where none is expected
		req.body = []byte(`{"unexpected":true}`)
	}
	return req
}

// fitting lists, by operation, the statuses of tasks it can act on; the
// fuzzer favours them so that claims, reports and retries go through.
var fitting = map[string][]string{
	"claimTask":      {"pending"},
	"reportProgress": {"processing"},
	"appendLogs":     {"processing"},
	"outputUrl":      {"processing"},
	"retryTask":      {"failed", "cancelled"},
	"deleteTask":     {"completed", "failed", "cancelled"},
	"downloadTask":   {"completed", "failed"},
	"confirmUpload":  {"pending", "scheduled"},
}

// taskID picks the {id} of a request: most often a task the fuzzer knows
// (one in a state op can act on, when there is one), sometimes an unknown,
// deleted or malformed one.
func (f *fuzzer) taskID(req *request, op *operation) string {
	switch r := f.rng.IntN(20); {
	case r < 16 && len(f.tasks) > 0:
		req.task = f.tasks[f.rng.IntN(len(f.tasks))]
		if want := fitting[op.id]; want != nil && !f.chance(4) {
			var fit []*fuzzTask
			for _, t := range f.tasks {
				if slices.Contains(want, t.status) && (op.id != "confirmUpload" || t.uploadURL != "") {
					fit = append(fit, t)
				}
			}
			if len(fit) > 0 {
				req.task = fit[f.rng.IntN(len(fit))]
			}
		}
		return req.task.id
	case r < 17 && len(f.deleted) > 0:
		return f.deleted[f.rng.IntN(len(f.deleted))]
	case r < 18:
		return uuid.New().String()
	}
	bad := []string{"x", "123", "00000000-0000-0000-0000-00000000000", "00000000-0000-0000-0000-0000000000000",
		"{" + uuid.NewString() + "}", strings.ToUpper(uuid.NewString()), "urn:uuid:" + uuid.NewString(),
		url.PathEscape("x'; drop table tasks --"), url.PathEscape(strings.Repeat("a", 5000)), "%00", "%ff%fe", url.PathEscape("ü")}
	return bad[f.rng.IntN(len(bad))]
}

// headerValue is a value for a documented header: valid, or broken.
func (f *fuzzer) headerValue(p param) string {
	switch p.name {
	case "Idempotency-Key":
		if f.chance(4) {
			return oddStrings(f.rng, 255)
		}
		return "key-" + strconv.Itoa(f.rng.IntN(16))
	case "Last-Event-ID":
		vals := []string{"0", "1", "5", "-1", "x", "9223372036854775808", "99999999999999999999", " 3 "}
		return vals[f.rng.IntN(len(vals))]
	}
	if !f.chance(4) {
		return fuzzTenants[1+f.rng.IntN(len(fuzzTenants)-1)]
	}
	return oddStrings(f.rng, 128)
}

// oddHeaders adds headers every route must cope with: broken identity,
// trace context and request ids, and stray content types.
func (f *fuzzer) oddHeaders(req *request) {
	if f.chance(12) {
		req.header.Set([]string{"X-Tenant-Id", "X-User-Id"}[f.rng.IntN(2)], oddStrings(f.rng, 128))
	}
	if f.chance(5) {
		tps := []string{
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
			"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
			"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
			"garbage", "", strings.Repeat("0", 10000),
		}
		req.header.Add("traceparent", tps[f.rng.IntN(len(tps))])
		if f.chance(3) {
			req.header.Add("traceparent", tps[0])
		}
	}
	if f.chance(6) {
		req.header.Set("X-Request-Id", oddStrings(f.rng, 128))
	}
	if f.chance(10) {
		req.header.Set("Content-Type", []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", ""}[f.rng.IntN(4)])
	}
}

// oddStrings returns a string a header can carry (an HTTP client sends no
// control characters but tab): of legal length or one over, with spaces,
// non-ASCII, invalid UTF-8, format characters.
func oddStrings(rng *rand.Rand, maxLen int) string {
	vals := []string{
		"", " ", "\t", "a b", strings.Repeat("t", maxLen), strings.Repeat("t", maxLen+1), strings.Repeat("é", maxLen/2+1),
		"bob\u200b", "\u202eevil", "\xff\xfe", "日本語", "😀", "../..", "' OR 1=1 --", "%00", "\\u0000",
	}
	return vals[rng.IntN(len(vals))]
}

// paramValue is a query value for p: from its schema, or broken.
func (f *fuzzer) paramValue(p param, task *fuzzTask) string {
	if f.chance(4) {
		v := f.invalid(p.name, p.schema)
		if s, ok := v.(string); ok {
			return s
		}
		b, _ := json.Marshal(v)
		return strings.Trim(string(b), `"`)
	}
	switch p.name {
	case "status":
		sts := []string{"pending", "processing,completed", "failed, cancelled", "scheduled,pending,pending"}
		return sts[f.rng.IntN(len(sts))]
	case "startDate", "endDate":
		ds := []string{"2024-05-01", time.Now().UTC().Format(time.RFC3339), "2099-12-31", time.Now().Add(-time.Hour).Format(time.RFC3339Nano)}
		return ds[f.rng.IntN(len(ds))]
	case "sort":
		ss := []string{"createdAt", "-priority", "status:asc", "completedAt:desc", "progress", "scheduledAt"}
		return ss[f.rng.IntN(len(ss))]
	case "search":
		if task != nil {
			return task.id[:8]
		}
	}
	v := f.valid(p.name, p.schema, task, 0)
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// body is a request body for op: most often valid, else one mutation of a
// valid one, else raw junk.
func (f *fuzzer) body(op *operation, task *fuzzTask) []byte {
	switch r := f.rng.IntN(100); {
	case r < 3:
		junk := []string{"", "{", "[]", "null", `""`, "42", `{"a":1}garbage`, `{"a":1}{"b":2}`, "\xff\xfe",
			strings.Repeat("[", 20000), `{"logs":[` + strings.Repeat("{},", 100) + `{}]}`}
		return []byte(junk[f.rng.IntN(len(junk))])
	case r < 4:
		return []byte(`{"pad":"` + strings.Repeat("x", MaxBodyBytesDefault) + `"}`)
	}
	v, _ := f.valid("", op.body, task, 0).(map[string]any)
	if v == nil {
		v = map[string]any{}
	}
	raw := false
	if f.chance(3) {
		raw = f.mutate(op.body, v, task)
	}
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatalf("marshal %v: %v", v, err)
	}
	if raw {
		b = bytes.ReplaceAll(b, []byte(invalidUTF8Marker), []byte("\xff\xfe"))
	}
	return b
}

// invalidUTF8Marker stands for invalid UTF-8 in a generated string; the
// marshalled body swaps it for raw bytes that JSON encoding would refuse.
const invalidUTF8Marker = "\ue000INVALID\ue000"

// mutate breaks v, a valid body of schema sch, in one way: a field gets an
// invalid value, loses it or gains an unknown one. It reports whether the
// body holds invalidUTF8Marker.
func (f *fuzzer) mutate(sch map[string]any, v map[string]any, task *fuzzTask) bool {
	props, _ := sch["properties"].(map[string]any)
	names := sortedKeys(props)
	// Sometimes reach into an array of objects (the lines of a logs call).
	for _, n := range names {
		items := f.spec.resolve(f.spec.resolve(props[n])["items"])
		if arr, ok := v[n].([]any); ok && len(arr) > 0 && items != nil && f.chance(2) {
			if obj, ok := arr[0].(map[string]any); ok {
				return f.mutate(items, obj, task)
			}
		}
	}
	switch r := f.rng.IntN(10); {
	case r < 1:
		v["unknown"+strconv.Itoa(f.rng.IntN(3))] = 1
	case r < 2 && len(names) > 0:
		delete(v, names[f.rng.IntN(len(names))])
	case len(names) > 0:
		n := names[f.rng.IntN(len(names))]
		v[n] = f.invalid(n, f.spec.resolve(props[n]))
		if s, ok := v[n].(string); ok && s == invalidUTF8Marker {
			return true
		}
	}
	return false
}

// valid returns a value that sch accepts, favouring the fuzzer's own state:
// the attempt of the task it targets, an upload it can complete.
func (f *fuzzer) valid(name string, sch map[string]any, task *fuzzTask, depth int) any {
	sch = f.spec.resolve(sch)
	if sch == nil || depth > 4 {
		return nil
	}
	if enum, ok := sch["enum"].([]any); ok {
		return enum[f.rng.IntN(len(enum))]
	}
	ts := types(sch)
	typ := ""
	for _, t := range ts {
		if t != "null" {
			typ = t
		}
	}
	if slices.Contains(ts, "null") && f.chance(6) {
		return nil
	}
	switch typ {
	case "object":
		return f.validObject(sch, task, depth)
	case "array":
		items := f.spec.resolve(sch["items"])
		n := 1 + f.rng.IntN(3)
		if f.chance(50) {
			n = 1000
		}
		out := make([]any, n)
		for i := range out {
			out[i] = f.valid("", items, task, depth+1)
		}
		return out
	case "integer":
		return f.validInt(name, sch, task)
	case "number":
		return json.Number(strconv.FormatFloat(f.rng.Float64()*100, 'f', 2, 64))
	case "boolean":
		return f.chance(2)
	case "string":
		return f.validString(name, sch)
	}
	// No type: any JSON (params, checkpoint, details).
	vals := []any{map[string]any{"offset": f.rng.IntN(1000)}, []any{1, "two", nil}, "text", json.Number("3.5"), nil, true}
	return vals[f.rng.IntN(len(vals))]
}

func (f *fuzzer) validObject(sch map[string]any, task *fuzzTask, depth int) map[string]any {
	props, _ := sch["properties"].(map[string]any)
	if len(props) == 0 {
		return map[string]any{"k" + strconv.Itoa(f.rng.IntN(5)): f.rng.IntN(10)}
	}
	required := anyStrings(sch["required"])
	out := map[string]any{}
	for _, n := range sortedKeys(props) {
		if slices.Contains(required, n) || f.chance(3) {
			out[n] = f.valid(n, f.spec.resolve(props[n]), task, depth+1)
		}
	}
	// Keep the pairs the service reads together coherent, most of the time.
	if _, ok := out["fileName"]; !ok && f.chance(2) {
		delete(out, "fileSize")
		delete(out, "contentType")
	}
	if task != nil && task.attempt > 0 && props["attempt"] != nil && !f.chance(4) {
		out["attempt"] = task.attempt
	}
	if task != nil && task.outputName != "" && props["outputFileName"] != nil && f.chance(2) {
		out["outputFileName"] = task.outputName
	}
	return out
}

func (f *fuzzer) validInt(name string, sch map[string]any, task *fuzzTask) any {
	lo, hasLo := bound(sch, "minimum")
	hi, hasHi := bound(sch, "maximum")
	if !hasLo {
		lo = big.NewInt(-1000)
	}
	if !hasHi {
		hi = new(big.Int).Add(lo, big.NewInt(1000))
	}
	switch {
	case name == "attempt" && task != nil && task.attempt > 0:
		return task.attempt
	case name == "fileSize":
		return f.rng.IntN(64)
	case name == "leaseSeconds" && f.chance(2):
		return 0
	case f.chance(5):
		return json.Number(lo.String())
	case f.chance(5):
		return json.Number(hi.String())
	}
	// Small values near the minimum: counts, pages and priorities that
	// make sense together.
	span := new(big.Int).Sub(hi, lo)
	if span.Cmp(big.NewInt(100)) > 0 {
		span = big.NewInt(100)
	}
	off := big.NewInt(f.rng.Int64N(span.Int64() + 1))
	return json.Number(new(big.Int).Add(lo, off).String())
}

func (f *fuzzer) validString(name string, sch map[string]any) string {
	switch format := str(sch["format"]); {
	case format == "date-time":
		return time.Now().Add(time.Duration(f.rng.IntN(7200)-3600) * time.Second).UTC().Format(time.RFC3339Nano)
	case format == "uuid":
		return uuid.NewString()
	case sch["pattern"] != nil:
		names := []string{"import", "export", "noop", "product", "order", "a.b:c-d_e", "X1"}
		return names[f.rng.IntN(len(names))]
	}
	switch name {
	case "fileName", "outputFileName":
		return []string{"in.csv", "report.xlsx", "a b.json", "ünï.txt"}[f.rng.IntN(4)]
	case "contentType":
		return []string{"text/csv", "application/json", "application/octet-stream"}[f.rng.IntN(3)]
	case "workerId":
		return "w" + strconv.Itoa(f.rng.IntN(3))
	}
	if maxLen, ok := bound(sch, "maxLength"); ok && f.chance(10) {
		return strings.Repeat("m", int(maxLen.Int64()))
	}
	return []string{"hello", "a", "message with spaces", "日本語"}[f.rng.IntN(4)]
}

// invalid returns a value sch should refuse (or, for loose schemas, an odd
// one it must survive): out of range, huge, of the wrong type, overlong,
// with NUL or invalid UTF-8.
func (f *fuzzer) invalid(name string, sch map[string]any) any {
	sch = f.spec.resolve(sch)
	huge := []any{json.Number("2147483648"), json.Number("-2147483649"), json.Number("9223372036854775807"),
		json.Number("9223372036854775808"), json.Number("-9223372036854775809"), json.Number("1e400"),
		json.Number("1.5"), json.Number("-0"), json.Number("1e3"), json.Number("100000000000000000000000000000")}
	wrong := []any{"12", "", true, map[string]any{}, []any{1}, nil}
	typ := ""
	if ts := types(sch); len(ts) > 0 {
		typ = ts[0]
	}
	switch {
	case typ == "integer" || typ == "number":
		if f.chance(3) {
			if lo, ok := bound(sch, "minimum"); ok {
				return json.Number(new(big.Int).Sub(lo, big.NewInt(1)).String())
			}
			if hi, ok := bound(sch, "maximum"); ok {
				return json.Number(new(big.Int).Add(hi, big.NewInt(1)).String())
			}
		}
		if f.chance(4) {
			return wrong[f.rng.IntN(len(wrong))]
		}
		return huge[f.rng.IntN(len(huge))]
	case typ == "string" || sch["enum"] != nil:
		n := 70000
		if maxLen, ok := bound(sch, "maxLength"); ok && f.chance(2) {
			n = int(maxLen.Int64()) + 1
		}
		odd := []any{strings.Repeat("s", n), "", " ", "\x00", "a\x00b", "\x01\x1f", "\u200b", "../../etc/passwd", "..",
			"\u202e", "😀", invalidUTF8Marker, "line\r\nbreak", "%s%n", "null", json.Number("5"), false, []any{"x"}, map[string]any{"a": "b"}}
		return odd[f.rng.IntN(len(odd))]
	case typ == "boolean":
		return []any{"true", 1, nil, "yes"}[f.rng.IntN(4)]
	case typ == "array":
		return []any{map[string]any{}, "x", []any{}, []any{nil}, []any{"x"}}[f.rng.IntN(5)]
	case typ == "object":
		return []any{[]any{1}, "x", 5, nil, map[string]any{"deep": strings.Repeat("d", 70000)}}[f.rng.IntN(5)]
	}
	return []any{huge[f.rng.IntN(len(huge))], strings.Repeat("z", 70000), map[string]any{"a": []any{nil}}}[f.rng.IntN(3)]
}

// send sends req and returns the status, media type and body (only the
// head of an event stream).
func (f *fuzzer) send(req request) (int, string, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := f.env.srv.URL + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var rd io.Reader
	if req.hasBody {
		rd = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, rd)
	if err != nil {
		f.t.Fatalf("request #%d %s %s: %v", f.n, req.method, commonops.Shorten(u, 200), err)
	}
	if req.hasBody && req.header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	resp, err := f.env.srv.Client().Do(hr)
	if err != nil {
		f.t.Fatalf("request #%d %s %s: %v", f.n, req.method, commonops.Shorten(u, 200), err)
	}
	defer resp.Body.Close()
	if req.stream && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, resp.Header.Get("Content-Type"), nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("request #%d %s %s: read: %v", f.n, req.method, commonops.Shorten(u, 200), err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// learn updates the fuzzer's state from an answer: tasks created, claimed,
// changed or deleted; and it follows the URLs it is handed, uploading input
// and output files so that the upload, download and completion routes go
// deeper.
func (f *fuzzer) learn(req request, status int, body []byte) {
	if status >= 300 {
		if status == http.StatusNotFound && req.task != nil && sameTenant(req.header.Get("X-Tenant-Id"), req.task.tenant) {
			f.forget(req.task)
		}
		return
	}
	switch req.op.id {
	case "deleteTask":
		if req.task != nil {
			f.forget(req.task)
			f.deleted = append(f.deleted, req.task.id)
		}
		return
	case "createTask":
		var c struct {
			Task          taskState         `json:"task"`
			UploadURL     string            `json:"uploadUrl"`
			UploadHeaders map[string]string `json:"uploadHeaders"`
		}
		if json.Unmarshal(body, &c) != nil || c.Task.ID == "" {
			return
		}
		for _, t := range f.tasks {
			if t.id == c.Task.ID { // an idempotent replay
				return
			}
		}
		t := &fuzzTask{id: c.Task.ID, tenant: req.header.Get("X-Tenant-Id"), uploadURL: c.UploadURL, uploadHeaders: c.UploadHeaders}
		if c.Task.FileSize != nil {
			t.fileSize = *c.Task.FileSize
		}
		c.Task.apply(t)
		f.tasks = append(f.tasks, t)
		if t.uploadURL != "" && !f.chance(3) {
			size := t.fileSize
			if f.chance(8) {
				size++ // a size that differs from fileSize
			}
			f.put(t.uploadURL, t.uploadHeaders, size)
		}
		return
	case "outputUrl":
		var o struct {
			UploadURL     string            `json:"uploadUrl"`
			UploadHeaders map[string]string `json:"uploadHeaders"`
		}
		var in struct {
			FileName string `json:"fileName"`
		}
		if json.Unmarshal(body, &o) == nil && json.Unmarshal(req.body, &in) == nil && req.task != nil {
			f.put(o.UploadURL, o.UploadHeaders, int64(f.rng.IntN(32)))
			req.task.outputName = in.FileName
		}
		return
	case "downloadTask":
		var d struct {
			DownloadURL string `json:"downloadUrl"`
		}
		if json.Unmarshal(body, &d) == nil && d.DownloadURL != "" {
			f.get(d.DownloadURL)
		}
		return
	}
	var ts taskState
	if req.task != nil && json.Unmarshal(body, &ts) == nil && ts.ID == req.task.id {
		ts.apply(req.task)
	}
}

// sameTenant reports whether two X-Tenant-Id values name one tenant.
func sameTenant(a, b string) bool {
	norm := func(s string) string {
		if s = strings.TrimSpace(s); s == "" {
			return "default"
		}
		return s
	}
	return norm(a) == norm(b)
}

// taskState is the part of a task's JSON the fuzzer keeps.
type taskState struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempt  int    `json:"attempt"`
	FileSize *int64 `json:"fileSize"`
}

func (s taskState) apply(t *fuzzTask) { t.status, t.attempt = s.Status, s.Attempt }

func (f *fuzzer) forget(t *fuzzTask) {
	f.tasks = slices.DeleteFunc(f.tasks, func(x *fuzzTask) bool { return x == t })
}

// put uploads size bytes to a URL the API handed out; the file routes are
// no part of the document, but must not fail either.
func (f *fuzzer) put(u string, headers map[string]string, size int64) {
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(bytes.Repeat([]byte("x"), int(size))))
	if err != nil {
		f.t.Errorf("upload URL %q: %v", u, err)
		return
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	f.side(req)
}

func (f *fuzzer) get(u string) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		f.t.Errorf("download URL %q: %v", u, err)
		return
	}
	f.side(req)
}

func (f *fuzzer) side(req *http.Request) {
	resp, err := f.env.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 {
		f.t.Errorf("%s %s (after request #%d, seed %d): got %d: %s", req.Method, req.URL, f.n, f.seed, resp.StatusCode, commonops.Shorten(string(body), 300))
	}
}
