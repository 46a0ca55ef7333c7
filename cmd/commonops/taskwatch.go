package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/taskclient"
)

// errTaskUnsuccessful marks the error of a watch whose task ended failed or
// cancelled.
var errTaskUnsuccessful = errors.New("the task did not complete")

// watch follows a task's event stream to its end: a progress bar on a
// terminal, the events on stdout, and an error (a non-zero exit) when the
// task fails or is cancelled, as `gh run watch --exit-status` does.
func (c *taskCmd) watch() func(context.Context) error {
	exitStatus := true
	c.fs.BoolVar(&exitStatus, "exit-status", true, "exit non-zero when the task ends failed or cancelled")
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		t, err := c.client.Get(ctx, id)
		if err != nil {
			return err
		}
		b := newBar(c.stderr)
		show := func(t *commonops.Task) {
			label := fmt.Sprintf("%s %s  %s items", t.ID, t.Status, items(t))
			if t.Message != nil && *t.Message != "" {
				label += "  " + *t.Message
			}
			b.draw(t.Progress/100, label)
		}
		show(t)
		status, err := c.client.Follow(ctx, id, 0, func(e commonops.Event) error {
			if err := c.streamEvent(b, e); err != nil {
				return err
			}
			if b.on { // the bar shows the task as it is now
				if now, err := c.client.Get(ctx, id); err == nil {
					t = now
				}
			}
			show(t)
			return nil
		})
		if err != nil {
			b.done()
			return err
		}
		if t, err = c.client.Get(ctx, id); err != nil {
			b.done()
			return err
		}
		show(t)
		b.done()
		switch c.out.format {
		case formatJSON:
			if err := c.out.task(t); err != nil {
				return err
			}
		case formatTable:
			line := fmt.Sprintf("task %s %s: %s items", t.ID, c.out.status(status), items(t))
			if t.ErrorMessage != nil {
				line += ": " + *t.ErrorMessage
			}
			fmt.Fprintln(c.stdout, line)
		}
		if exitStatus && status != commonops.StatusCompleted {
			msg := ""
			if t.ErrorMessage != nil {
				msg = ": " + *t.ErrorMessage
			}
			return fmt.Errorf("task %s %s%s: %w", id, status, msg, errTaskUnsuccessful)
		}
		return nil
	}
}

// streamEvent prints one event of a stream as it arrives: a JSON line, or
// a table line above the bar. The JSON format keeps to the final task.
func (c *taskCmd) streamEvent(b *bar, e commonops.Event) error {
	switch c.out.format {
	case formatJSONL:
		return json.NewEncoder(c.stdout).Encode(e)
	case formatTable:
		b.clear()
		_, err := fmt.Fprintln(c.stdout, eventLine(e))
		return err
	}
	return nil
}

// events prints a task's events, or with -f follows its live stream until
// the task ends (as JSON Lines for -o json too).
func (c *taskCmd) events() func(context.Context) error {
	var follow bool
	var after int64
	c.fs.BoolVar(&follow, "f", false, "follow the live stream until the task ends")
	c.fs.BoolVar(&follow, "follow", false, "same as -f")
	c.fs.Int64Var(&after, "after", 0, "only events with a larger id")
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		if follow {
			if c.out.format == formatJSON {
				c.out.format = formatJSONL
			}
			_, err := c.client.Follow(ctx, id, after, func(e commonops.Event) error {
				return c.streamEvent(&bar{}, e)
			})
			return err
		}
		var all []commonops.Event
		for {
			es, err := c.client.Events(ctx, id, after, 0)
			if err != nil {
				return err
			}
			all = append(all, es...)
			if len(es) == 0 || len(es) < 1000 {
				break
			}
			after = es[len(es)-1].ID
		}
		return c.out.events(all)
	}
}

// logs prints a task's log, or with -f follows it until the task ends (as
// JSON Lines for -o json too).
func (c *taskCmd) logs() func(context.Context) error {
	var follow bool
	var level string
	c.fs.BoolVar(&follow, "f", false, "follow the log until the task ends")
	c.fs.BoolVar(&follow, "follow", false, "same as -f")
	c.fs.StringVar(&level, "level", "", "only lines of this level: debug, info, warn or error")
	return func(ctx context.Context) error {
		id, err := c.taskID()
		if err != nil {
			return err
		}
		if follow && c.out.format == formatJSON {
			c.out.format = formatJSONL
		}
		var all []commonops.LogEntry
		o := taskclient.LogOptions{Level: level, Page: 1, PageSize: logsPageSize}
		seen := 0 // lines of page o.Page already printed
		for {
			// Read the status first: lines written before the task ended
			// are in the pages read after.
			var ended bool
			if follow {
				t, err := c.client.Get(ctx, id)
				if err != nil {
					return err
				}
				ended = t.Status.Terminal()
			}
			p, err := c.client.Logs(ctx, id, o)
			if err != nil {
				return err
			}
			if fresh := p.Logs[min(seen, len(p.Logs)):]; len(fresh) > 0 {
				if follow {
					if err := c.out.logs(fresh); err != nil {
						return err
					}
				} else {
					all = append(all, fresh...)
				}
			}
			seen = len(p.Logs)
			if seen == o.PageSize {
				o.Page, seen = o.Page+1, 0
				continue
			}
			if !follow {
				return c.out.logs(all)
			}
			if ended {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(followInterval):
			}
		}
	}
}
