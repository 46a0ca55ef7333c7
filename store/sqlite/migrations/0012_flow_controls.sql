-- 0012: flow controls (pause and concurrency limits per task type, for
-- every tenant or one) and the indexes of the fair claim (see the
-- PostgreSQL migration 0015).
CREATE TABLE flow_controls (
    tenant_id   TEXT NOT NULL, -- '' for every tenant
    task_type   TEXT NOT NULL,
    max_running INTEGER,       -- NULL: no limit
    paused      INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (task_type, tenant_id)
);

CREATE INDEX tasks_fair_claim ON tasks (tenant_id, task_type, priority DESC, created_at, id) WHERE status = 'pending';
CREATE INDEX tasks_running ON tasks (task_type, tenant_id) WHERE status = 'processing';
