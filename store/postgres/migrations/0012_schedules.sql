-- 0012: recurring schedules (docs/design.md, Schedules). next_run_at is the
-- tick to fire next; a replica fires it with an UPDATE guarded by the value
-- it read, so one tick creates one task across replicas. template is the
-- task's create input as JSON (json, not jsonb, so params keep their text).
CREATE TABLE schedules (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    cron         text NOT NULL,
    time_zone    text NOT NULL,
    template     json NOT NULL,
    overlap      text NOT NULL,
    missed_runs  text NOT NULL,
    paused       boolean NOT NULL DEFAULT false,
    next_run_at  timestamptz,
    last_run_at  timestamptz,
    last_task_id text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL
);
CREATE INDEX schedules_tenant_idx ON schedules (tenant_id, id);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE NOT paused;
