package postgres

import (
	"context"

	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/commonops/commonops"
)

// DeliverySignal returns a channel of its own that receives (without
// blocking) after this process commits a terminal status, which may have
// written webhook deliveries; stop releases it. Other replicas' deliveries
// are found by the dispatcher's poll.
func (s *Store) DeliverySignal() (signal <-chan struct{}, stop func()) {
	return s.deliveries.Subscribe()
}

const deliveryColumns = `id, tenant_id, task_id, subscription_id, url, event_type, status, attempt_count, next_attempt_at, created_at, delivered_at`

func scanDelivery(r pgx.Row, extra ...any) (*commonops.Delivery, error) {
	var d commonops.Delivery
	var status string
	err := r.Scan(append([]any{&d.ID, &d.TenantID, &d.TaskID, &d.SubscriptionID, &d.URL, &d.EventType, &status,
		&d.AttemptCount, &d.NextAttemptAt, &d.CreatedAt, &d.DeliveredAt}, extra...)...)
	if err != nil {
		return nil, err
	}
	d.Status = commonops.DeliveryStatus(status)
	d.CreatedAt = d.CreatedAt.UTC()
	d.NextAttemptAt, d.DeliveredAt = utcPtr(d.NextAttemptAt), utcPtr(d.DeliveredAt)
	return &d, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// ClaimDeliveries takes due deliveries FOR UPDATE SKIP LOCKED and moves
// their next attempt to now+lease in the same statement.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*commonops.Delivery, error) {
	if limit < 1 {
		return nil, commonops.Errorf(commonops.EINVALID, "limit must be at least 1, got %d", limit)
	}
	rows, err := s.pool.Query(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $2
		WHERE id IN (SELECT id FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at <= $1
			ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+deliveryColumns+`, payload`, dbTime(now), dbTime(now.Add(lease)), limit)
	if err != nil {
		return nil, interpretError(fmt.Errorf("claim deliveries: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Delivery, error) {
		var payload []byte
		d, err := scanDelivery(r, &payload)
		if err != nil {
			return nil, err
		}
		d.Payload = payload
		return d, nil
	})
	if err != nil {
		return nil, interpretError(fmt.Errorf("claim deliveries: %w", err))
	}
	return out, nil
}

// lockDeliveriesSQL waits, in DeleteTask, for the attempts being recorded
// on the task's deliveries, so that the delete of its finished deliveries,
// a statement after it with a snapshot of its own, sees their status as
// recorded. With pruneDeliverySQL after each finishing record, a delivery
// that finishes while its task is deleted is deleted by one or the other.
const lockDeliveriesSQL = `SELECT 1 FROM webhook_deliveries WHERE task_id = $1 AND tenant_id = $2 FOR UPDATE`

// pruneDeliverySQL deletes delivery $1 (its attempts go with it) once it
// is finished and its task is gone: a delivery still pending when its task
// was deleted is sent, then pruned.
const pruneDeliverySQL = `DELETE FROM webhook_deliveries WHERE id = $1 AND status <> 'pending'
	AND NOT EXISTS (SELECT 1 FROM tasks WHERE id = webhook_deliveries.task_id)`

// RecordDeliveryAttempt writes the attempt row and the delivery's state in
// one round trip, and prunes a finished delivery of a deleted task in a
// second.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, d *commonops.Delivery) error {
	if len(d.Attempts) == 0 {
		return commonops.Errorf(commonops.EINVALID, "delivery %d has no attempt to record", d.ID)
	}
	a := d.Attempts[len(d.Attempts)-1]
	var n int
	err := s.pool.QueryRow(ctx, `WITH u AS (
		UPDATE webhook_deliveries SET status = $2, attempt_count = $3, next_attempt_at = $4, delivered_at = $5
		WHERE id = $1 RETURNING id
	), a AS (
		INSERT INTO webhook_attempts (delivery_id, attempt, at, ok, status_code, error, duration_ms)
		SELECT id, $6, $7, $8, $9, $10, $11 FROM u
		ON CONFLICT (delivery_id, attempt) DO NOTHING
	)
	SELECT count(*) FROM u`,
		d.ID, string(d.Status), d.AttemptCount, optTime(d.NextAttemptAt), optTime(d.DeliveredAt),
		a.Attempt, dbTime(a.At), a.OK, a.StatusCode, a.Error, a.DurationMs).Scan(&n)
	if err != nil {
		return interpretError(fmt.Errorf("record attempt %d of delivery %d: %w", a.Attempt, d.ID, err))
	}
	if n == 0 {
		return commonops.Errorf(commonops.ENOTFOUND, "delivery %d not found", d.ID)
	}
	if d.Status != commonops.DeliveryPending {
		// A statement after the record's commit: see lockDeliveriesSQL.
		if _, err := s.pool.Exec(ctx, pruneDeliverySQL, d.ID); err != nil {
			return interpretError(fmt.Errorf("prune delivery %d: %w", d.ID, err))
		}
	}
	return nil
}

// DeliveryBacklog counts the pending deliveries through the partial index
// of the pending ones.
func (s *Store) DeliveryBacklog(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, interpretError(fmt.Errorf("delivery backlog: %w", err))
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, oldest.UTC(), nil
}

// ListDeliveries reads a task's deliveries, then their attempts, both in
// one snapshot: a dispatcher recording an attempt between the two reads
// would otherwise show the attempt beside the delivery's state before it.
func (s *Store) ListDeliveries(ctx context.Context, tenant, taskID string) (out []*commonops.Delivery, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out, err = listDeliveries(ctx, tx, taskID, tenant)
		return err
	})
	if err != nil {
		return nil, interpretError(err)
	}
	return out, nil
}

func listDeliveries(ctx context.Context, tx pgx.Tx, taskID, tenant string) ([]*commonops.Delivery, error) {
	rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE task_id = $1 AND tenant_id = $2 ORDER BY id`, taskID, tenant)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of task %s: %w", taskID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, fmt.Errorf("list deliveries of task %s: %w", taskID, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	byID := map[int64]*commonops.Delivery{}
	ids := make([]int64, len(out))
	for i, d := range out {
		d.Attempts = []commonops.DeliveryAttempt{}
		byID[d.ID], ids[i] = d, d.ID
	}
	rows, err = tx.Query(ctx, `SELECT delivery_id, attempt, at, ok, status_code, error, duration_ms
		FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids)
	if err != nil {
		return nil, fmt.Errorf("list attempts of task %s: %w", taskID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a commonops.DeliveryAttempt
		if err := rows.Scan(&id, &a.Attempt, &a.At, &a.OK, &a.StatusCode, &a.Error, &a.DurationMs); err != nil {
			return nil, fmt.Errorf("list attempts of task %s: %w", taskID, err)
		}
		a.At = a.At.UTC()
		byID[id].Attempts = append(byID[id].Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list attempts of task %s: %w", taskID, err)
	}
	return out, nil
}

// CreateSubscription inserts sub; a taken id is ECONFLICT.
func (s *Store) CreateSubscription(ctx context.Context, sub *commonops.Subscription) error {
	sub.CreatedAt = dbTime(sub.CreatedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_subscriptions (id, tenant_id, task_type, url, created_at) VALUES ($1, $2, $3, $4, $5)`,
		sub.ID, sub.TenantID, sub.TaskType, sub.URL, sub.CreatedAt)
	if isCode(err, codeUniqueViolation) {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("subscription %s already exists", sub.ID), Err: err}
	}
	if err != nil {
		return interpretError(fmt.Errorf("create subscription %s: %w", sub.ID, err))
	}
	return nil
}

// ListSubscriptions returns tenant's subscriptions, oldest first.
func (s *Store) ListSubscriptions(ctx context.Context, tenant string) ([]*commonops.Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, task_type, url, created_at FROM webhook_subscriptions
		WHERE tenant_id = $1 ORDER BY created_at, id`, tenant)
	if err != nil {
		return nil, interpretError(fmt.Errorf("list subscriptions: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*commonops.Subscription, error) {
		var sub commonops.Subscription
		if err := r.Scan(&sub.ID, &sub.TenantID, &sub.TaskType, &sub.URL, &sub.CreatedAt); err != nil {
			return nil, err
		}
		sub.CreatedAt = sub.CreatedAt.UTC()
		return &sub, nil
	})
	if err != nil {
		return nil, interpretError(fmt.Errorf("list subscriptions: %w", err))
	}
	return out, nil
}

// DeleteSubscription deletes tenant's subscription id, or is ENOTFOUND.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE id = $1 AND tenant_id = $2`, id, tenant)
	if err != nil {
		return interpretError(fmt.Errorf("delete subscription %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return commonops.Errorf(commonops.ENOTFOUND, "subscription %s not found", id)
	}
	return nil
}
