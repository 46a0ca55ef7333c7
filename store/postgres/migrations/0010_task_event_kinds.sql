-- 0010: task_events carry the task's kind, its status after the change and
-- its requester, so that a tenant's stream (GET /events) filters and scopes
-- without reading tasks (docs/design.md, Events). The writes take them from
-- the row the same statement writes (changeCTEs, claimEvents). Older rows are
-- filled from their task; their status is the event's "to".
ALTER TABLE task_events
    ADD COLUMN task_type    text NOT NULL DEFAULT '',
    ADD COLUMN entity_type  text NOT NULL DEFAULT '',
    ADD COLUMN status       text NOT NULL DEFAULT '',
    ADD COLUMN requested_by text NOT NULL DEFAULT '';
UPDATE task_events e
SET task_type = t.task_type, entity_type = t.entity_type, requested_by = t.requested_by,
    status = coalesce(e.event_data->>'to', t.status)
FROM tasks t WHERE t.id = e.task_id;
-- A tenant's events in id order: the replay of a tenant stream.
CREATE INDEX task_events_tenant_idx ON task_events (tenant_id, id);
