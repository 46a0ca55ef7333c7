package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/operations"
)

// apikey runs `commonops apikey create|list|revoke`: API keys written
// straight to the configured database (the same flags and environment as
// serve), which is how the first admin key of a deployment is made.
func apikey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("apikey: want create, list or revoke")
	}
	sub, args := args[0], args[1:]
	var (
		tenant, name, roles, types, id string
		platformAdmin                  bool
		expiresIn                      time.Duration
	)
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "tenant of the key (required)")
		switch sub {
		case "create":
			fs.StringVar(&name, "name", "admin", "label of the key")
			fs.StringVar(&roles, "roles", "", "comma list of admin, operator, submitter, viewer, worker (required)")
			fs.StringVar(&types, "task-types", "", "comma list of the task types the key may create or claim; empty: any")
			fs.BoolVar(&platformAdmin, "platform-admin", false, "the key may act in every tenant")
			fs.DurationVar(&expiresIn, "expires-in", 0, "the key expires after this long; 0: never")
		case "revoke":
			fs.StringVar(&id, "id", "", "id of the key to revoke (required)")
		}
	}
	switch sub {
	case "create", "list", "revoke":
	default:
		return fmt.Errorf("apikey: unknown command %q (want create, list or revoke)", sub)
	}
	o, _, err := parseOptions("apikey "+sub, args, getenv, stderr, flags)
	if err != nil {
		return err
	}
	if tenant == "" {
		return fmt.Errorf("apikey %s: --tenant is required", sub)
	}
	st, _, err := app.OpenStore(ctx, o.Config, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := &operations.Service{Store: st}
	switch sub {
	case "create":
		req := operations.KeyRequest{Tenant: tenant, Name: name, TaskTypes: split(types), PlatformAdmin: platformAdmin, CreatedBy: "cli"}
		for _, r := range split(roles) {
			req.Roles = append(req.Roles, auth.Role(r))
		}
		if expiresIn > 0 {
			exp := time.Now().Add(expiresIn)
			req.ExpiresAt = &exp
		}
		k, err := svc.CreateAPIKey(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "API key %s of tenant %s created; it is shown only once, keep it now:\n", k.ID, k.Tenant)
		fmt.Fprintln(stdout, k.Key)
	case "list":
		keys, err := svc.ListAPIKeys(ctx, tenant)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLES\tTASK TYPES\tCREATED\tEXPIRES\tREVOKED\tLAST USED")
		for _, k := range keys {
			rs := make([]string, len(k.Roles))
			for i, r := range k.Roles {
				rs[i] = string(r)
			}
			if k.PlatformAdmin {
				rs = append(rs, "(platform admin)")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(rs, ","), orDash(strings.Join(k.TaskTypes, ",")),
				k.CreatedAt.Format(time.RFC3339), when(k.ExpiresAt), when(k.RevokedAt), when(k.LastUsedAt))
		}
		return tw.Flush()
	case "revoke":
		if id == "" {
			return fmt.Errorf("apikey revoke: --id is required")
		}
		k, err := svc.RevokeAPIKey(ctx, tenant, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "API key %s revoked at %s; replicas stop accepting it within %s\n", k.ID, k.RevokedAt.Format(time.RFC3339), auth.KeyCacheTTLDefault)
	}
	return nil
}

// split reads a comma list, without empty items.
func split(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
