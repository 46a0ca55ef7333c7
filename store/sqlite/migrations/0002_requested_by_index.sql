-- 0002: "my tasks" (requestedBy, newest first) is the list a user sees most.
CREATE INDEX tasks_tenant_requester_created ON tasks (tenant_id, requested_by, created_at);
