-- 0015: flow controls (pause and concurrency limits per task type, for
-- every tenant or one) and the indexes of the fair claim. ClaimNext walks
-- the (tenant, task type) pairs with pending tasks by a loose index scan of
-- tasks_fair_claim_idx and takes each pair's first tasks in claim order from
-- the same index; the limits count running tasks from tasks_running_idx
-- (few rows: one per busy worker slot).
CREATE TABLE flow_controls (
    tenant_id   text NOT NULL, -- '' for every tenant
    task_type   text NOT NULL,
    max_running integer,       -- NULL: no limit
    paused      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (task_type, tenant_id)
);

CREATE INDEX tasks_fair_claim_idx ON tasks (tenant_id, task_type, priority DESC, created_at, id) WHERE status = 'pending';
CREATE INDEX tasks_running_idx ON tasks (task_type, tenant_id) WHERE status = 'processing';
