-- 0017: a webhook delivery still pending when its task was deleted used to
-- stay once it finished. RecordDeliveryAttempt now deletes such a delivery
-- as it finishes; this deletes the ones left before (attempts cascade).
DELETE FROM webhook_deliveries d
WHERE d.status <> 'pending' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = d.task_id);
