-- 0003: "my tasks" (requestedBy, newest first) is the list a user sees most;
-- without its own index it scanned the whole tenant.
CREATE INDEX tasks_tenant_requester_created_idx ON tasks (tenant_id, requested_by, created_at DESC) INCLUDE (status, task_type);
