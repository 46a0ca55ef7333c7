package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/outbox"
)

// DeliverOutbox hands up to limit unsent rows, oldest first, to publish and
// marks sent the first n it reports; the other rows handed over stay unsent
// with one more attempt counted. SQLite cannot lock rows, so deliveries of
// one Store are serialised: two concurrent calls never publish a row twice.
func (s *Store) DeliverOutbox(ctx context.Context, limit int, publish func(context.Context, []outbox.Message) (int, error)) (int, error) {
	if limit <= 0 {
		return 0, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()

	var msgs []outbox.Message
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT id, tenant_id, task_id, topic, payload, created_at, attempts, coalesce(traceparent, '') FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m       outbox.Message
				payload string
				created int64
			)
			if err := rows.Scan(&m.ID, &m.TenantID, &m.TaskID, &m.Topic, &payload, &created, &m.Attempts, &m.TraceParent); err != nil {
				return err
			}
			m.Payload, m.CreatedAt = json.RawMessage(payload), fromMicros(created)
			msgs = append(msgs, m)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	n, perr := publish(ctx, msgs)
	n = min(max(n, 0), len(msgs))
	// Record the outcome even when ctx ended during publish: what went out
	// must not go out again.
	wctx := context.WithoutCancel(ctx)
	err = s.write(wctx, func(tx *sql.Tx) error {
		if n > 0 && s.deletePublished {
			if _, err := tx.ExecContext(wctx, "DELETE FROM outbox WHERE id IN ("+placeholders(n)+")", ids(msgs[:n])...); err != nil {
				return err
			}
		} else if n > 0 {
			if _, err := tx.ExecContext(wctx, "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id IN ("+placeholders(n)+")",
				append([]any{micros(s.now())}, ids(msgs[:n])...)...); err != nil {
				return err
			}
		}
		if n < len(msgs) {
			if _, err := tx.ExecContext(wctx, "UPDATE outbox SET attempts = attempts + 1 WHERE id IN ("+placeholders(len(msgs)-n)+")", ids(msgs[n:])...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("mark outbox rows sent: %w", err)
	}
	if perr != nil {
		return n, fmt.Errorf("publish outbox: %w", perr)
	}
	return n, nil
}

func placeholders(n int) string { return "?" + strings.Repeat(", ?", n-1) }

func ids(msgs []outbox.Message) []any {
	a := make([]any, len(msgs))
	for i, m := range msgs {
		a[i] = m.ID
	}
	return a
}

// OutboxStats reports the unsent backlog and its oldest creation time.
func (s *Store) OutboxStats(ctx context.Context) (int, time.Time, error) {
	var (
		n      int
		oldest sql.NullInt64
	)
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL").Scan(&n, &oldest)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMicros(oldest.Int64), nil
}

// PruneOutbox deletes up to limit rows sent before sentBefore.
func (s *Store) PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, commonops.Invalid(commonops.FieldError{Field: "limit", Message: "must be positive"})
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? ORDER BY id LIMIT ?)", micros(sentBefore), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return int(n), nil
}
