-- 0005: a task counts the bytes its files hold in the object store (its
-- input once confirmed, its output and errors files once it completed), and
-- a tenant's usage against the stored-bytes quota is their sum
-- (docs/design.md §3, Quotas), read from the partial index of the tasks
-- with files. Tasks confirmed before this migration count 0 until they are
-- deleted.
ALTER TABLE tasks ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_tenant_stored ON tasks (tenant_id, stored_bytes) WHERE stored_bytes > 0;
