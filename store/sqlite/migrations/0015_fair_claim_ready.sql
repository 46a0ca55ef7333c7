-- 0015: tasks_fair_claim holds only the pending tasks that are ready (no
-- upload, or uploaded) and not backing off (no available_at), and
-- tasks_retry_claim, ordered by available_at, the ready ones with one, as the
-- PostgreSQL migration 0018 does: the claim takes each (tenant, task type)
-- pair's first runnable tasks from these indexes, and stepped over every
-- pending task that still awaited its file or its backoff's end on each
-- call. The queue statistics, which count those as pending, do not read
-- these indexes.
DROP INDEX tasks_fair_claim;
CREATE INDEX tasks_fair_claim ON tasks (tenant_id, task_type, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NULL;
CREATE INDEX tasks_retry_claim ON tasks (tenant_id, task_type, available_at, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NOT NULL;
