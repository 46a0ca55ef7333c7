-- 0018: tasks_fair_claim_idx holds only the pending tasks whose input is
-- ready (no upload, or uploaded). A task created with a file waits for its
-- upload as a pending task, and the claim, which takes each (tenant, task
-- type) pair's first runnable tasks from this index in claim order, stepped
-- over every one of them on each call: 5,009 index entries read a claim
-- behind 5,000 imports awaiting their files. The pending tasks awaiting an
-- upload get their own small index, for the queue statistics, which count
-- them as pending.
--
-- Both indexes are small (pending tasks only), but building them reads the
-- whole table while this migration's transaction blocks writes to tasks: a
-- few seconds for 1,000,000 tasks. On a much larger table, create them
-- CONCURRENTLY by hand under other names before upgrading, then rename.
DROP INDEX tasks_fair_claim_idx;
CREATE INDEX tasks_fair_claim_idx ON tasks (tenant_id, task_type, priority DESC, created_at, id)
    WHERE status = 'pending' AND upload_status NOT IN ('awaiting', 'expired');
CREATE INDEX tasks_pending_upload_idx ON tasks (task_type, tenant_id)
    WHERE status = 'pending' AND upload_status IN ('awaiting', 'expired');
