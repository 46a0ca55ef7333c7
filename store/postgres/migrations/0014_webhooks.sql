-- 0014: completion webhooks (docs/design.md, Completion webhooks). A task
-- may name a callback_url; a tenant may subscribe a URL to the terminal
-- statuses of a task type. The transaction that makes a task terminal writes
-- one webhook_deliveries row per URL (the outbox of the webhooks), and each
-- POST the dispatcher makes is a webhook_attempts row.
ALTER TABLE tasks ADD COLUMN callback_url text;

CREATE TABLE webhook_subscriptions (
    id         text PRIMARY KEY,
    tenant_id  text NOT NULL,
    task_type  text NOT NULL,
    url        text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant_idx ON webhook_subscriptions (tenant_id, task_type);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    task_id         text NOT NULL,
    subscription_id text,
    url             text NOT NULL,
    event_type      text NOT NULL,
    payload         json NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempt_count   integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_task_idx ON webhook_deliveries (task_id);

CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    ok          boolean NOT NULL,
    status_code integer,
    error       text,
    duration_ms bigint NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
