-- 0011: completion webhooks (docs/design.md, Completion webhooks). A task
-- may name a callback_url; a tenant may subscribe a URL to the terminal
-- statuses of a task type. The transaction that makes a task terminal writes
-- one webhook_deliveries row per URL (the outbox of the webhooks), and each
-- POST the dispatcher makes is a webhook_attempts row.
ALTER TABLE tasks ADD COLUMN callback_url TEXT;

CREATE TABLE webhook_subscriptions (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    task_type  TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id, task_type);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    subscription_id TEXT,
    url             TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id);

CREATE TABLE webhook_attempts (
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
