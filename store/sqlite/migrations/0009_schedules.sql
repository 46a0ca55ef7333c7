-- 0009: recurring schedules (docs/design.md, Schedules). next_run_at is the
-- tick to fire next; a process fires it with an UPDATE guarded by the value
-- it read, so one tick creates one task. template is the task's create
-- input as JSON; times are Unix microseconds.
CREATE TABLE schedules (
    id           TEXT    PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    cron         TEXT    NOT NULL,
    time_zone    TEXT    NOT NULL,
    template     TEXT    NOT NULL,
    overlap      TEXT    NOT NULL,
    missed_runs  TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_run_at  INTEGER,
    last_run_at  INTEGER,
    last_task_id TEXT,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    version      INTEGER NOT NULL
);
CREATE INDEX schedules_tenant ON schedules (tenant_id, id);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE paused = 0;
