-- 0007: task_events carry the task's kind, its status after the change and
-- its requester, so that a tenant's stream (GET /events) filters and scopes
-- without reading tasks (docs/design.md, Events). Older rows are filled
-- from their task; their status is the event's "to".
ALTER TABLE task_events ADD COLUMN task_type    TEXT NOT NULL DEFAULT '';
ALTER TABLE task_events ADD COLUMN entity_type  TEXT NOT NULL DEFAULT '';
ALTER TABLE task_events ADD COLUMN status       TEXT NOT NULL DEFAULT '';
ALTER TABLE task_events ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
UPDATE task_events SET
    task_type    = coalesce((SELECT task_type FROM tasks WHERE tasks.id = task_events.task_id), ''),
    entity_type  = coalesce((SELECT entity_type FROM tasks WHERE tasks.id = task_events.task_id), ''),
    requested_by = coalesce((SELECT requested_by FROM tasks WHERE tasks.id = task_events.task_id), ''),
    status       = coalesce(json_extract(event_data, '$.to'), (SELECT status FROM tasks WHERE tasks.id = task_events.task_id), '');
-- A tenant's events in id order: the replay of a tenant stream.
CREATE INDEX task_events_tenant ON task_events (tenant_id, id);
