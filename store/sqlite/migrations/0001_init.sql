-- 0001_init: the task store. Column names are shared with store/postgres;
-- SQLite keeps every time as INTEGER unix microseconds in UTC (so ordering and
-- comparisons are exact and match PostgreSQL's timestamptz precision), and
-- JSON (params, checkpoint, details, event_data, payload, response) as text.

CREATE TABLE tasks (
    id                     TEXT    NOT NULL PRIMARY KEY,
    tenant_id              TEXT    NOT NULL,
    task_type              TEXT    NOT NULL,
    entity_type            TEXT    NOT NULL,
    status                 TEXT    NOT NULL,
    priority               INTEGER NOT NULL DEFAULT 0,
    params                 TEXT    NOT NULL DEFAULT '{}',
    requested_by           TEXT    NOT NULL DEFAULT '',
    file_name              TEXT,
    file_size              INTEGER,
    content_type           TEXT,
    upload_status          TEXT    NOT NULL DEFAULT 'none',
    upload_expires_at      INTEGER,
    output_file_name       TEXT,
    errors_file_name       TEXT,
    progress               REAL    NOT NULL DEFAULT 0,
    total_items            INTEGER,
    processed_items        INTEGER NOT NULL DEFAULT 0,
    success_items          INTEGER NOT NULL DEFAULT 0,
    failed_items           INTEGER NOT NULL DEFAULT 0,
    message                TEXT,
    error_message          TEXT,
    attempt                INTEGER NOT NULL DEFAULT 0,
    retry_count            INTEGER NOT NULL DEFAULT 0,
    max_retries            INTEGER NOT NULL DEFAULT 0,
    cancel_requested       INTEGER NOT NULL DEFAULT 0,
    checkpoint             TEXT,
    lease_owner            TEXT,
    lease_expires_at       INTEGER,
    available_at           INTEGER,
    scheduled_at           INTEGER,
    started_at             INTEGER,
    completed_at           INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    version                INTEGER NOT NULL DEFAULT 1,
    last_progress_event_at INTEGER
);

-- Listing: one tenant, newest first, optionally by status or task type.
CREATE INDEX tasks_tenant_created ON tasks (tenant_id, created_at);
CREATE INDEX tasks_tenant_status_created ON tasks (tenant_id, status, created_at);
CREATE INDEX tasks_tenant_type_created ON tasks (tenant_id, task_type, created_at);
-- ClaimNext: runnable pending tasks, highest priority first, then oldest.
CREATE INDEX tasks_claim ON tasks (priority DESC, created_at) WHERE status = 'pending';
-- Maintenance sweeps.
CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE status = 'processing';
CREATE INDEX tasks_scheduled ON tasks (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX tasks_awaiting_upload ON tasks (upload_expires_at) WHERE upload_status = 'awaiting';
CREATE INDEX tasks_terminal_completed ON tasks (completed_at) WHERE status IN ('completed', 'failed', 'cancelled');

CREATE TABLE task_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL,
    task_id    TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL DEFAULT 0,
    level      TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    details    TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, id);
CREATE INDEX task_logs_task_level ON task_logs (task_id, level, id);

CREATE TABLE task_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL,
    task_id    TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    event_type TEXT    NOT NULL,
    event_data TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);

-- The outbox outlives its task (a deleted task's last events still go out),
-- so task_id has no foreign key.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE idempotency_keys (
    tenant_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    status_code  INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_task ON idempotency_keys (task_id);

CREATE TABLE leaders (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
