-- 0003: an outbox row carries the W3C traceparent of the request that made
-- its change (NULL when it had none), so the published event continues the
-- trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
