package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/taskclient"
	"github.com/commonops/commonops/workerclient"
)

// logsPageSize is the page length `task logs` reads.
const logsPageSize = 1000

// followInterval is how often `task logs -f` looks for new lines.
const followInterval = 500 * time.Millisecond

// taskUsage lists the task commands.
const taskUsage = `usage: commonops task <command> [flags] [ID]

  create    create a task (--type, --entity; --file uploads its input; --batch FILE.jsonl creates many)
  list      list tasks (--status, --type, --entity, --search, --limit, --all)
  get       show a task
  watch     follow a task to its end with a progress bar; non-zero exit when it fails
  logs      print a task's log (-f follows it)
  events    print a task's events (-f follows the live stream)
  cancel    cancel a task
  retry     retry a failed or cancelled task (--force goes past maxRetries)
  delete    delete a terminal task
  download  download a task's file (--file output|errors|input, --out PATH or -)

Every command takes --server, --token, --tenant, --profile and -o table|json|jsonl;
the environment has COMMONOPS_SERVER, COMMONOPS_TOKEN, COMMONOPS_TENANT, COMMONOPS_PROFILE.
'commonops task <command> -h' lists a command's flags.`

// taskCmd is what every `commonops task` command has: its flags, the
// client, the output. Each command is a method that registers its own flags
// and returns the function that runs it once they are parsed.
type taskCmd struct {
	name   string
	fs     *flag.FlagSet
	client *taskclient.Client
	out    printer
	stdout io.Writer
	stderr io.Writer
	args   []string // positional arguments
}

// taskCommand runs `commonops task <command>`: the task API from the command line.
func taskCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, taskUsage)
		return nil
	}
	name, args := args[0], args[1:]
	command, ok := map[string]func(*taskCmd) func(context.Context) error{
		"create": (*taskCmd).create, "list": (*taskCmd).list, "get": (*taskCmd).get,
		"watch": (*taskCmd).watch, "logs": (*taskCmd).logs, "events": (*taskCmd).events,
		"cancel": (*taskCmd).cancel, "retry": (*taskCmd).retry, "delete": (*taskCmd).delete,
		"download": (*taskCmd).download,
	}[name]
	if !ok {
		return fmt.Errorf("task: unknown command %q (want create, list, get, watch, logs, events, cancel, retry, delete or download)", name)
	}
	c := &taskCmd{name: name, stdout: stdout, stderr: stderr, fs: flag.NewFlagSet("commonops task "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	var id identityFlags
	id.register(c.fs)
	var format string
	c.fs.StringVar(&format, "o", "", "output: table, json or jsonl (default table on a terminal, jsonl otherwise)")
	c.fs.StringVar(&format, "output", "", "same as -o")
	run := command(c) // registers the command's flags
	pos, err := parseInterspersed(c.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task %s: %w", name, err)
	}
	c.args = pos
	if c.out, err = newPrinter(format, stdout); err != nil {
		return fmt.Errorf("task %s: %w", name, err)
	}
	who, err := id.resolve(getenv)
	if err != nil {
		return fmt.Errorf("task %s: %w", name, err)
	}
	c.client = taskclient.New(who.Server, taskclient.WithToken(who.Token), taskclient.WithTenant(who.Tenant))
	if err := run(ctx); err != nil {
		return explain(name, err)
	}
	return nil
}

// taskID returns the one positional argument, the task's id.
func (c *taskCmd) taskID() (string, error) {
	if len(c.args) != 1 {
		return "", fmt.Errorf("want one task id, got %d arguments", len(c.args))
	}
	return c.args[0], nil
}

// parseInterspersed parses flags before, between and after the positional
// arguments, which it returns: `task get ID -o json` reads like `task get
// -o json ID`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// explain turns an API problem into one line: the command, the status, the
// detail, the field errors and the request id.
func explain(name string, err error) error {
	var e *workerclient.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("task %s: %w", name, err)
	}
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	var fields []string
	for _, f := range e.Errors {
		fields = append(fields, f.Field+": "+f.Message)
	}
	if len(fields) > 0 {
		msg += " (" + strings.Join(fields, "; ") + ")"
	}
	if e.StatusCode == http.StatusUnauthorized {
		msg += " (give a token with --token, COMMONOPS_TOKEN or a profile)"
	}
	if e.RequestID != "" {
		msg += " [request " + e.RequestID + "]"
	}
	return fmt.Errorf("task %s: %d %s: %s", name, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

func (c *taskCmd) create() func(context.Context) error {
	var (
		in                  commonops.CreateInput
		params, file, ctype string
		key, scheduledAt    string
		batch               string
	)
	c.fs.StringVar(&in.TaskType, "type", "", "task type (required)")
	c.fs.StringVar(&in.EntityType, "entity", "", "entity type (required)")
	c.fs.StringVar(&params, "params", "", "params: a JSON object, or @FILE to read it from a file")
	c.fs.StringVar(&file, "file", "", "input file, uploaded through the pre-signed URL")
	c.fs.StringVar(&ctype, "content-type", "", "content type of the input file (default: from its extension)")
	c.fs.Func("priority", "priority, -1000..1000 (default 0)", intFlag(&in.Priority))
	c.fs.Func("max-retries", "retries after a failure, 0..100 (default 3)", intFlag(&in.MaxRetries))
	c.fs.StringVar(&scheduledAt, "scheduled-at", "", "run at this RFC 3339 time")
	c.fs.StringVar(&key, "idempotency-key", "", "a repeated create with this key returns the first task")
	c.fs.StringVar(&batch, "batch", "", "create the tasks of this JSON Lines file (- for stdin), one create body a line, with its own idempotencyKey; sent 1,000 a request")
	return func(ctx context.Context) error {
		if batch != "" {
			return c.createBatch(ctx, batch)
		}
		if in.TaskType == "" || in.EntityType == "" {
			return errors.New("--type and --entity are required")
		}
		if len(c.args) > 0 {
			return fmt.Errorf("unexpected argument %q", c.args[0])
		}
		if params != "" {
			b := []byte(params)
			if name, ok := strings.CutPrefix(params, "@"); ok {
				var err error
				if b, err = os.ReadFile(name); err != nil {
					return fmt.Errorf("--params: %w", err)
				}
			}
			if !json.Valid(b) {
				return errors.New("--params: not valid JSON")
			}
			in.Params = b
		}
		if scheduledAt != "" {
			at, err := time.Parse(time.RFC3339, scheduledAt)
			if err != nil {
				return fmt.Errorf("--scheduled-at: %w", err)
			}
			in.ScheduledAt = &at
		}
		var f *os.File
		var size int64
		if file != "" {
			var err error
			if f, err = os.Open(file); err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			size = st.Size()
			name := filepath.Base(file)
			if ctype == "" {
				ctype = mime.TypeByExtension(filepath.Ext(name))
			}
			in.FileName, in.FileSize = &name, &size
			if ctype != "" {
				in.ContentType = &ctype
			}
		}
		created, err := c.client.Create(ctx, in, key)
		if err != nil {
			return err
		}
		t := &created.Task
		if f != nil {
			b := newBar(c.stderr)
			err := c.client.Upload(ctx, created, &meter{Reader: f, bar: b, total: size}, size)
			b.done()
			if err != nil {
				return err
			}
			if t, err = c.client.ConfirmUpload(ctx, t.ID); err != nil {
				return err
			}
		}
		return c.out.task(t)
	}
}

// batchLine is one line's answer of `task create --batch`.
type batchLine struct {
	Line int `json:"line"`
	taskclient.BatchResult
}

// createBatch creates the tasks of a JSON Lines file, taskclient.MaxBatch
// a request, and prints one result a line (the task id or the problem). It
// fails when a line is not a create or an item was refused.
func (c *taskCmd) createBatch(ctx context.Context, name string) error {
	if len(c.args) > 0 {
		return fmt.Errorf("unexpected argument %q", c.args[0])
	}
	r := io.Reader(os.Stdin)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("--batch: %w", err)
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		items  []taskclient.BatchItem
		lines  []int
		failed int
	)
	send := func() error {
		if len(items) == 0 {
			return nil
		}
		b, err := c.client.CreateBatch(ctx, items)
		if err != nil {
			return err
		}
		out := make([]batchLine, len(b.Results))
		for n, res := range b.Results {
			out[n] = batchLine{Line: lines[n], BatchResult: res}
		}
		failed += b.Failed
		items, lines = items[:0], lines[:0]
		return emit(c.out, out, false, "", func(l batchLine) string {
			if l.Problem != nil {
				return fmt.Sprintf("%d\t%d\t%s", l.Line, l.Status, problemText(l.Problem))
			}
			return fmt.Sprintf("%d\t%d\t%s", l.Line, l.Status, l.ID)
		})
	}
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var it taskclient.BatchItem
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return fmt.Errorf("--batch: line %d: %w", n, err)
		}
		items, lines = append(items, it), append(lines, n)
		if len(items) == taskclient.MaxBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--batch: %w", err)
	}
	if err := send(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("task create: %d of the batch's items were refused", failed)
	}
	return nil
}

// problemText is a refused item's problem on one line.
func problemText(e *workerclient.Error) string {
	msg := e.Detail
	for _, f := range e.Errors {
		msg += "; " + f.Field + " " + f.Message
	}
	return msg
}

// intFlag sets *p from an integer flag, leaving it nil when not given.
func intFlag(p **int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		*p = &n
		return nil
	}
}

func (c *taskCmd) list() func(context.Context) error {
	var (
		o   taskclient.ListOptions
		all bool
	)
	c.fs.StringVar(&o.Status, "status", "", "comma list of statuses")
	c.fs.StringVar(&o.TaskType, "type", "", "task type")
	c.fs.StringVar(&o.EntityType, "entity", "", "entity type")
	c.fs.StringVar(&o.RequestedBy, "requested-by", "", "requester")
	c.fs.StringVar(&o.Search, "search", "", "substring of file name, message or error, or an id prefix")
	c.fs.StringVar(&o.Sort, "sort", "", "field or -field (default -createdAt)")
	c.fs.IntVar(&o.PageSize, "limit", 20, "tasks per page, at most 1000")
	c.fs.StringVar(&o.Cursor, "cursor", "", "start at this nextCursor of an earlier page")
	c.fs.BoolVar(&all, "all", false, "follow the cursor through every page")
	return func(ctx context.Context) error {
		if len(c.args) > 0 {
			return fmt.Errorf("unexpected argument %q", c.args[0])
		}
		var tasks []commonops.Task
		for {
			p, err := c.client.List(ctx, o)
			if err != nil {
				return err
			}
			tasks = append(tasks, p.Tasks...)
			if p.NextCursor == nil {
				break
			}
			if !all {
				fmt.Fprintf(c.stderr, "more tasks: --cursor %s (or --all)\n", *p.NextCursor)
				break
			}
			o.Cursor = *p.NextCursor
		}
		return c.out.tasks(tasks)
	}
}

func (c *taskCmd) get() func(context.Context) error {
	return c.oneTask(func(ctx context.Context, id string) (*commonops.Task, error) { return c.client.Get(ctx, id) })
}

func (c *taskCmd) cancel() func(context.Context) error {
	return c.oneTask(func(ctx context.Context, id string) (*commonops.Task, error) { return c.client.Cancel(ctx, id) })
}

func (c *taskCmd) retry() func(context.Context) error {
	var force bool
	c.fs.BoolVar(&force, "force", false, "retry even past maxRetries")
	return c.oneTask(func(ctx context.Context, id string) (*commonops.Task, error) { return c.client.Retry(ctx, id, force) })
}

// oneTask runs call on the task the argument names and prints its answer.
func (c *taskCmd) oneTask(call func(context.Context, string) (*commonops.Task, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		t, err := call(ctx, id)
		if err != nil {
			return err
		}
		return c.out.task(t)
	}
}

func (c *taskCmd) delete() func(context.Context) error {
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		if err := c.client.Delete(ctx, id); err != nil {
			return err
		}
		if c.out.format == formatTable {
			fmt.Fprintf(c.stdout, "deleted task %s\n", id)
			return nil
		}
		return emit(c.out, []map[string]any{{"id": id, "deleted": true}}, true, "", nil)
	}
}

func (c *taskCmd) download() func(context.Context) error {
	var which, to string
	c.fs.StringVar(&which, "file", "output", "which file: output, errors or input")
	c.fs.StringVar(&to, "out", "", "where to write it; - for stdout (default: the file's own name, here)")
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		f, err := c.client.Download(ctx, id, which)
		if err != nil {
			return err
		}
		defer f.Close()
		if to == "" {
			to = filepath.Base(f.Name)
		}
		b := newBar(c.stderr)
		src := &meter{Reader: f, bar: b, total: f.Size}
		if to == "-" {
			_, err := io.Copy(c.stdout, src)
			b.done()
			return err
		}
		dst, err := os.Create(to)
		if err != nil {
			return err
		}
		n, err := io.Copy(dst, src)
		b.done()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", to, err)
		}
		if c.out.format == formatTable {
			fmt.Fprintf(c.stdout, "wrote %s (%s)\n", to, bytesize(n))
			return nil
		}
		return emit(c.out, []map[string]any{{"taskId": id, "file": which, "fileName": f.Name, "path": to, "bytes": n}}, true, "", nil)
	}
}
