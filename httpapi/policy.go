package httpapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/operations"
)

// policy is who may call a route. Every route in routes.go declares one;
// NewServer refuses a route without.
type policy struct {
	// public routes need no principal: probes, documents and the signed
	// file URLs, whose signature is their authorization.
	public bool
	// all are the roles allowed on every task of the tenant.
	all []auth.Role
	// own are the roles allowed only on the tasks the principal created
	// (operations.Scope.OwnedBy): a submitter's.
	own []auth.Role
}

// allow is the policy of a route the given roles may call.
func allow(roles ...auth.Role) policy { return policy{all: roles} }

// ownTasksFor adds roles allowed on the principal's own tasks only.
func (p policy) ownTasksFor(roles ...auth.Role) policy {
	p.own = append(slices.Clone(p.own), roles...)
	return p
}

// public is the policy of a route anyone may call.
func publicRoute() policy { return policy{public: true} }

// declared reports whether p says anything.
func (p policy) declared() bool { return p.public || len(p.all) > 0 || len(p.own) > 0 }

// scope decides whether principal pr may call the route: the scope it runs
// in, or EFORBIDDEN naming the roles that may.
func (p policy) scope(pr *auth.Principal) (operations.Scope, error) {
	sc := operations.Scope{TaskTypes: pr.TaskTypes}
	for _, r := range p.all {
		if pr.Has(r) {
			return sc, nil
		}
	}
	for _, r := range p.own {
		if pr.Has(r) {
			sc.OwnedBy = pr.Subject
			return sc, nil
		}
	}
	var names []string
	for _, r := range append(slices.Clone(p.all), p.own...) {
		names = append(names, string(r))
	}
	return sc, commonops.Errorf(commonops.EFORBIDDEN, "this call needs one of the roles %s; the caller has %s",
		strings.Join(names, ", "), roleList(pr.Roles))
}

func roleList(roles []auth.Role) string {
	if len(roles) == 0 {
		return "none"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Role sets of the routes (see the README's matrix).
var (
	// readers read every task of the tenant.
	readers = []auth.Role{auth.RoleAdmin, auth.RoleOperator, auth.RoleViewer}
	// operators act on every task of the tenant.
	operators = []auth.Role{auth.RoleAdmin, auth.RoleOperator}
	// submitters create tasks.
	submitters = []auth.Role{auth.RoleAdmin, auth.RoleOperator, auth.RoleSubmitter}
)

// mustDeclare panics on a route without a policy: a wiring mistake that
// every test of the package then reports.
func mustDeclare(rt route) {
	if !rt.policy.declared() {
		panic(fmt.Sprintf("httpapi: route %s declares no policy", rt.pattern()))
	}
}
