// Command commonops runs the commonops task service: the HTTP API, the
// built-in worker and the maintenance jobs, on PostgreSQL, S3 and Dapr in
// production or on an embedded default (SQLite, local files, in-process bus)
// with no flags at all.
//
//	commonops [serve] [flags]   run the service (default: every role)
//	commonops migrate [flags]   apply database migrations and exit
//	commonops config [flags]    print the settings in force (secrets masked)
//	commonops config --markdown print every setting and its default (README)
//	commonops apikey create|list|revoke --tenant T [flags]
//	                            manage API keys in the database (the first admin key)
//	commonops task create|list|get|watch|logs|events|cancel|retry|delete|download
//	                            the task API from the command line (see task -h)
//	commonops version           print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "commonops: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it with their own arguments,
// environment and context, and stop it by cancelling ctx.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "migrate":
		o, _, err := parseOptions(cmd, args, getenv, stderr)
		if err != nil {
			return err
		}
		if cmd == "migrate" {
			return migrate(ctx, o, stdout)
		}
		return serve(ctx, o, getenv, stdout)
	case "config":
		if len(args) == 1 && args[0] == "--markdown" {
			printTable(stdout)
			return nil
		}
		o, sources, err := parseOptions(cmd, args, getenv, stderr)
		if err != nil {
			return err
		}
		printEffective(stdout, o, sources)
		return nil
	case "apikey":
		return apikey(ctx, args, getenv, stdout, stderr)
	case "task":
		return taskCommand(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "commonops", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: commonops [serve|migrate|config|apikey|task|version] [flags]; commonops serve -h lists the flags, commonops task -h the task commands")
		return nil
	}
	return fmt.Errorf("unknown command %q (want serve, migrate, config, apikey, task or version)", cmd)
}
