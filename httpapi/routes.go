package httpapi

import "net/http"

// prefix is where the task API lives (docs/design.md §3).
const prefix = "/api/v1/operations"

// route is one entry of the API surface.
type route struct {
	method  string // "" for a mount, which takes every method
	path    string // a net/http ServeMux path pattern
	handler http.Handler
	// tenant routes read the tenant and the requester from X-Tenant-Id and
	// X-User-Id before their handler runs.
	tenant bool
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

// routes is the whole HTTP surface of commonops, on one screen.
func (s *server) routes() []route {
	task := prefix + "/tasks/{id}"
	api := func(method, path string, h http.Handler) route {
		return route{method: method, path: path, handler: h, tenant: true}
	}
	return []route{
		api("POST", prefix+"/tasks", handleCreate(s)),
		api("GET", prefix+"/tasks", handleList(s)),
		api("GET", task, handleGet(s)),
		api("DELETE", task, handleDelete(s)),
		api("POST", task+"/cancel", handleCancel(s)),
		api("POST", task+"/retry", handleRetry(s)),
		api("POST", task+"/upload-complete", handleUploadComplete(s)),
		api("GET", task+"/download", handleDownload(s)),
		api("GET", task+"/logs", handleListLogs(s)),
		api("GET", task+"/events", handleEvents(s)),
		// The worker API.
		api("POST", task+"/claim", handleClaim(s)),
		api("PATCH", task+"/progress", handleProgress(s)),
		api("POST", task+"/logs", handleAppendLogs(s)),
		api("POST", task+"/output-url", handleOutputURL(s)),
		// Probes and documents.
		{method: "GET", path: prefix + "/health", handler: handleHealth(s)},
		{method: "GET", path: "/healthz", handler: handleLiveness()},
		{method: "GET", path: "/readyz", handler: handleReadiness(s)},
		{method: "GET", path: "/metrics", handler: handleOptional(s, s.metrics, "metrics are not enabled")},
		{method: "GET", path: "/openapi.json", handler: handleOpenAPI()},
		// Subtrees of other packages.
		{path: "/files/", handler: handleOptional(s, s.files, "the local file store is not enabled"), mount: true},
	}
}
