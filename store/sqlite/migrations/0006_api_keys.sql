-- 0005: API keys (docs/design.md, Identity and access). Only the SHA-256 of
-- a key is stored; its id, which is part of the key, names it in listings,
-- logs and task events. roles and task_types are JSON arrays.
CREATE TABLE api_keys (
    id             TEXT    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    key_hash       TEXT    NOT NULL UNIQUE,
    roles          TEXT,
    task_types     TEXT,
    platform_admin INTEGER NOT NULL DEFAULT 0,
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    last_used_at   INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at DESC);
