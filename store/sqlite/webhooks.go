package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commonops/commonops"
)

// DeliverySignal returns a channel of its own that receives (without
// blocking) when this process writes a terminal status, which may have
// written webhook deliveries; stop releases it.
func (s *Store) DeliverySignal() (signal <-chan struct{}, stop func()) {
	return s.deliveries.Subscribe()
}

// insertDeliveries writes, in the transaction of t's terminal change, one
// delivery to t's callback URL and one to each subscription of t's tenant
// to its task type. The signal it sends before the commit is safe: the
// dispatcher claims through the one writer connection, which this
// transaction holds until it ends.
func (s *Store) insertDeliveries(ctx context.Context, q querier, t *commonops.Task, topic string, payload []byte) error {
	at := micros(t.UpdatedAt)
	if t.CallbackURL != nil {
		if _, err := q.ExecContext(ctx, `INSERT INTO webhook_deliveries (tenant_id, task_id, url, event_type, payload, created_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, t.TenantID, t.ID, *t.CallbackURL, topic, string(payload), at, at); err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO webhook_deliveries (tenant_id, task_id, subscription_id, url, event_type, payload, created_at, next_attempt_at)
		SELECT tenant_id, ?, id, url, ?, ?, ?, ? FROM webhook_subscriptions WHERE tenant_id = ? AND task_type IN (?, '*') ORDER BY created_at, id`,
		t.ID, topic, string(payload), at, at, t.TenantID, t.TaskType); err != nil {
		return fmt.Errorf("insert subscription deliveries: %w", err)
	}
	s.deliveries.Signal()
	return nil
}

const deliveryColumns = `id, tenant_id, task_id, subscription_id, url, event_type, status, attempt_count, next_attempt_at, created_at, delivered_at`

func scanDelivery(r scanner, extra ...any) (*commonops.Delivery, error) {
	var d commonops.Delivery
	var status string
	var sub sql.NullString
	var next, delivered sql.NullInt64
	var created int64
	err := r.Scan(append([]any{&d.ID, &d.TenantID, &d.TaskID, &sub, &d.URL, &d.EventType, &status,
		&d.AttemptCount, &next, &created, &delivered}, extra...)...)
	if err != nil {
		return nil, err
	}
	d.Status = commonops.DeliveryStatus(status)
	d.SubscriptionID = strPtr(sub)
	d.NextAttemptAt, d.DeliveredAt, d.CreatedAt = fromNullMicros(next), fromNullMicros(delivered), fromMicros(created)
	return &d, nil
}

// ClaimDeliveries takes due deliveries in one write transaction (the
// single writer serialises dispatchers) and moves their next attempt to
// now+lease.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*commonops.Delivery, error) {
	if limit < 1 {
		return nil, commonops.Errorf(commonops.EINVALID, "limit must be at least 1, got %d", limit)
	}
	var out []*commonops.Delivery
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?
			WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?
				ORDER BY next_attempt_at, id LIMIT ?)
			RETURNING `+deliveryColumns+`, payload`, micros(now.Add(lease)), micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var payload string
			d, err := scanDelivery(rows, &payload)
			if err != nil {
				return err
			}
			d.Payload = []byte(payload)
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	// RETURNING gives no order.
	slices.SortFunc(out, func(a, b *commonops.Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// RecordDeliveryAttempt writes the attempt row and the delivery's state in
// one transaction.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, d *commonops.Delivery) error {
	if len(d.Attempts) == 0 {
		return commonops.Errorf(commonops.EINVALID, "delivery %d has no attempt to record", d.ID)
	}
	a := d.Attempts[len(d.Attempts)-1]
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?, delivered_at = ? WHERE id = ?`,
			string(d.Status), d.AttemptCount, optMicros(d.NextAttemptAt), optMicros(d.DeliveredAt), d.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, commonops.Errorf(commonops.ENOTFOUND, "delivery %d not found", d.ID))
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, at, ok, status_code, error, duration_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING`,
			d.ID, a.Attempt, micros(a.At), boolInt(a.OK), a.StatusCode, a.Error, a.DurationMs)
		if err != nil || d.Status == commonops.DeliveryPending {
			return err
		}
		// A delivery still pending when its task was deleted is sent, then
		// pruned (its attempts go with it, ON DELETE CASCADE).
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id = ?
			AND NOT EXISTS (SELECT 1 FROM tasks WHERE id = webhook_deliveries.task_id)`, d.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("record attempt %d of delivery %d: %w", a.Attempt, d.ID, err)
	}
	return nil
}

// DeliveryBacklog counts the pending deliveries through the partial index
// of the pending ones.
func (s *Store) DeliveryBacklog(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&n, &oldest)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("delivery backlog: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMicros(oldest.Int64), nil
}

// ListDeliveries reads a task's deliveries and their attempts.
func (s *Store) ListDeliveries(ctx context.Context, tenant, taskID string) ([]*commonops.Delivery, error) {
	out := []*commonops.Delivery{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE task_id = ? AND tenant_id = ? ORDER BY id`, taskID, tenant)
		if err != nil {
			return err
		}
		byID := map[int64]*commonops.Delivery{}
		var ids []any
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			d.Attempts = []commonops.DeliveryAttempt{}
			out = append(out, d)
			byID[d.ID] = d
			ids = append(ids, d.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT delivery_id, attempt, at, ok, status_code, error, duration_ms FROM webhook_attempts
			WHERE delivery_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY delivery_id, attempt`, ids...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, at int64
			var ok int
			var code sql.NullInt64
			var msg sql.NullString
			var a commonops.DeliveryAttempt
			if err := rows.Scan(&id, &a.Attempt, &at, &ok, &code, &msg, &a.DurationMs); err != nil {
				return err
			}
			a.At, a.OK, a.Error = fromMicros(at), ok != 0, strPtr(msg)
			if code.Valid {
				c := int(code.Int64)
				a.StatusCode = &c
			}
			byID[id].Attempts = append(byID[id].Attempts, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list deliveries of task %s: %w", taskID, err)
	}
	return out, nil
}

// CreateSubscription inserts sub; a taken id is ECONFLICT.
func (s *Store) CreateSubscription(ctx context.Context, sub *commonops.Subscription) error {
	sub.CreatedAt = truncTime(sub.CreatedAt)
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_subscriptions (id, tenant_id, task_type, url, created_at) VALUES (?, ?, ?, ?, ?)`,
			sub.ID, sub.TenantID, sub.TaskType, sub.URL, micros(sub.CreatedAt))
		return err
	})
	if isUniqueViolation(err) {
		return &commonops.Error{Code: commonops.ECONFLICT, Message: fmt.Sprintf("subscription %s already exists", sub.ID), Err: err}
	}
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", sub.ID, err)
	}
	return nil
}

// ListSubscriptions returns tenant's subscriptions, oldest first.
func (s *Store) ListSubscriptions(ctx context.Context, tenant string) ([]*commonops.Subscription, error) {
	out := []*commonops.Subscription{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id, tenant_id, task_type, url, created_at FROM webhook_subscriptions
			WHERE tenant_id = ? ORDER BY created_at, id`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sub commonops.Subscription
			var created int64
			if err := rows.Scan(&sub.ID, &sub.TenantID, &sub.TaskType, &sub.URL, &created); err != nil {
				return err
			}
			sub.CreatedAt = fromMicros(created)
			out = append(out, &sub)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

// DeleteSubscription deletes tenant's subscription id, or is ENOTFOUND.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string) error {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_subscriptions WHERE id = ? AND tenant_id = ?`, id, tenant)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if n == 0 {
		return commonops.Errorf(commonops.ENOTFOUND, "subscription %s not found", id)
	}
	return nil
}
