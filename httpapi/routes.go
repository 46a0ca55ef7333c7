package httpapi

import (
	"net/http"

	"github.com/commonops/commonops/auth"
)

// prefix is where the task API lives (docs/design.md §3).
const prefix = "/api/v1/operations"

// route is one entry of the API surface.
type route struct {
	method  string // "" for a mount, which takes every method
	path    string // a net/http ServeMux path pattern
	handler http.Handler
	// policy is who may call the route. Every route but the public ones
	// runs as an authenticated principal, whose tenant the handler sees,
	// checked against the policy before the handler runs (and before any
	// database work but an API key's first check).
	policy policy
	// mount is a subtree served by another package; it is not described in
	// openapi.json.
	mount bool
}

// pattern is the ServeMux pattern of rt, also its metrics label.
func (rt route) pattern() string {
	if rt.method == "" {
		return rt.path
	}
	return rt.method + " " + rt.path
}

// routes is the whole HTTP surface of commonops, with who may call what, on
// one screen.
func (s *server) routes() []route {
	task := prefix + "/tasks/{id}"
	api := func(method, path string, p policy, h http.Handler) route {
		return route{method: method, path: path, handler: h, policy: p}
	}
	worker := allow(auth.RoleWorker)
	return []route{
		api("POST", prefix+"/tasks", allow(submitters...), handleCreate(s)),
		api("POST", prefix+"/tasks/batch", allow(submitters...), handleCreateBatch(s)),
		api("GET", prefix+"/tasks", allow(readers...).ownTasksFor(auth.RoleSubmitter), handleList(s)),
		api("GET", task, allow(readers...).ownTasksFor(auth.RoleSubmitter), handleGet(s)),
		api("DELETE", task, allow(operators...), handleDelete(s)),
		api("POST", task+"/cancel", allow(operators...).ownTasksFor(auth.RoleSubmitter), handleCancel(s)),
		api("POST", task+"/retry", allow(operators...).ownTasksFor(auth.RoleSubmitter), handleRetry(s)),
		api("POST", task+"/upload-complete", allow(operators...).ownTasksFor(auth.RoleSubmitter), handleUploadComplete(s)),
		api("GET", task+"/download", allow(readers...).ownTasksFor(auth.RoleSubmitter), handleDownload(s)),
		api("GET", task+"/logs", allow(readers...).ownTasksFor(auth.RoleSubmitter), handleListLogs(s)),
		api("GET", task+"/events", allow(readers...).ownTasksFor(auth.RoleSubmitter), handleEvents(s)),
		api("GET", prefix+"/events", allow(readers...).ownTasksFor(auth.RoleSubmitter), handleTenantEvents(s)),
		api("GET", prefix+"/queues", allow(readers...), handleQueues(s)),
		// The worker API, limited to the task types of the worker's key or
		// token.
		api("POST", task+"/claim", worker, handleClaim(s)),
		api("PATCH", task+"/progress", worker, handleProgress(s)),
		api("POST", task+"/logs", worker, handleAppendLogs(s)),
		api("POST", task+"/output-url", worker, handleOutputURL(s)),
		// API keys.
		api("POST", prefix+"/apikeys", allow(auth.RoleAdmin), handleCreateKey(s)),
		api("GET", prefix+"/apikeys", allow(auth.RoleAdmin), handleListKeys(s)),
		api("DELETE", prefix+"/apikeys/{keyId}", allow(auth.RoleAdmin), handleRevokeKey(s)),
		// Probes and documents.
		{method: "GET", path: prefix + "/health", handler: handleHealth(s), policy: publicRoute()},
		{method: "GET", path: "/healthz", handler: handleLiveness(), policy: publicRoute()},
		{method: "GET", path: "/readyz", handler: handleReadiness(s), policy: publicRoute()},
		{method: "GET", path: "/metrics", handler: handleOptional(s, s.metrics, "metrics are not enabled"), policy: publicRoute()},
		{method: "GET", path: "/openapi.json", handler: handleOpenAPI(), policy: publicRoute()},
		// Subtrees of other packages. Signed file URLs carry their own
		// authorization: one object, one method, until they expire.
		{path: "/files/", handler: handleOptional(s, s.files, "the local file store is not enabled"), mount: true, policy: publicRoute()},
	}
}
