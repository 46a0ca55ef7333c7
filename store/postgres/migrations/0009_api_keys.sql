-- 0008: API keys (docs/design.md, Identity and access). Only the SHA-256 of
-- a key is stored; its id, which is part of the key, names it in listings,
-- logs and task events.
CREATE TABLE api_keys (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL,
    name           text NOT NULL,
    key_hash       text NOT NULL UNIQUE,
    roles          text[],
    task_types     text[],
    platform_admin boolean NOT NULL DEFAULT false,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);
