-- 0015: tasks_fair_claim holds only the pending tasks whose input is ready
-- (no upload, or uploaded), as the PostgreSQL migration 0018 does: the
-- claim takes each (tenant, task type) pair's first runnable tasks from
-- this index in claim order, and stepped over every pending task that
-- still awaited its file on each call. The queue statistics, which count
-- those as pending, do not read this index.
DROP INDEX tasks_fair_claim;
CREATE INDEX tasks_fair_claim ON tasks (tenant_id, task_type, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired');
