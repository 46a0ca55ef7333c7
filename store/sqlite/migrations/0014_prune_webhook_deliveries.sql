-- 0014: a webhook delivery still pending when its task was deleted used to
-- stay once it finished. RecordDeliveryAttempt now deletes such a delivery
-- as it finishes; this deletes the ones left before (attempts cascade).
DELETE FROM webhook_deliveries
WHERE status <> 'pending' AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = webhook_deliveries.task_id);
