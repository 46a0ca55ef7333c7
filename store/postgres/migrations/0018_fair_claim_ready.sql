-- 0018: tasks_fair_claim_idx holds only the pending tasks that are ready
-- and not backing off (no available_at): a task created with a file waits
-- for its upload as a pending task, and a failed attempt waits out its
-- backoff as one, and the claim, which takes each (tenant, task type)
-- pair's first runnable tasks from this index in claim order, stepped over
-- every one of them on each call: 5,009 index entries read a claim behind
-- 5,000 imports awaiting their files, as many behind 5,000 backing off.
-- The ready tasks with an available_at get tasks_retry_claim_idx, ordered
-- by it, so a claim reads only those whose backoff is over; the pending
-- tasks awaiting an upload get their own small index, for the queue
-- statistics, which count them as pending.
--
-- The new indexes are built first and the old one dropped last: building
-- blocks writes to tasks (not reads) until the migration commits, and the
-- drop, which blocks reads too, is held only for the end of it. Building
-- reads the whole table: about 3.5 s for 1,000,000 tasks, all pending. On
-- a much larger table, build them by hand beforehand, outside a
-- transaction:
--   CREATE INDEX CONCURRENTLY tasks_fair_claim_ready_idx ON tasks (tenant_id, task_type, priority DESC, created_at, id)
--       WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NULL;
--   CREATE INDEX CONCURRENTLY tasks_retry_claim_idx ON tasks (tenant_id, task_type, available_at, priority DESC, created_at, id)
--       WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NOT NULL;
--   CREATE INDEX CONCURRENTLY tasks_pending_upload_idx ON tasks (task_type, tenant_id)
--       WHERE status = 'pending' AND upload_status IN ('awaiting', 'expired');
-- and this migration uses them (check first that none is INVALID, as a
-- failed concurrent build leaves it: drop and build it again).
--
-- Replicas still running the code from before this migration plan their
-- claim's scan of the pairs on status = 'pending' alone, which no index
-- serves once the old one is gone: their claims read every task of the
-- table until they are replaced, so roll the upgrade through promptly.
CREATE INDEX IF NOT EXISTS tasks_fair_claim_ready_idx ON tasks (tenant_id, task_type, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NULL;
CREATE INDEX IF NOT EXISTS tasks_retry_claim_idx ON tasks (tenant_id, task_type, available_at, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired') AND available_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_pending_upload_idx ON tasks (task_type, tenant_id)
    WHERE status = 'pending' AND upload_status IN ('awaiting', 'expired');
DROP INDEX tasks_fair_claim_idx;
ALTER INDEX tasks_fair_claim_ready_idx RENAME TO tasks_fair_claim_idx;
