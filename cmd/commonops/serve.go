package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/commonops/commonops/app"
)

// newLogger writes JSON lines at the configured level.
func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve runs the stock server until ctx ends, then shuts it down
// gracefully. The start-up log line carries the bound address (tests
// listen on port 0 and read it there). The OTEL_* variables turn on
// tracing (app.TracingFromEnv); its last spans are flushed on the way out.
func serve(ctx context.Context, o *options, getenv func(string) string, stdout io.Writer) (err error) {
	cfg := o.Config
	cfg.Logger = newLogger(o.LogLevel, stdout)
	cfg.Version = version
	stopTracing, err := app.TracingFromEnv(ctx, getenv)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if ferr := stopTracing(fctx); ferr != nil {
			cfg.Logger.Warn("flush traces", "err", ferr)
		}
	}()
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// tracingFlushTimeout bounds the export of the last spans at shut-down.
const tracingFlushTimeout = 5 * time.Second

// migrate applies the database migrations and exits.
func migrate(ctx context.Context, o *options, stdout io.Writer) error {
	s, name, err := app.OpenStore(ctx, o.Config, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "migrations applied on %s\n", name)
	return nil
}
