package operations

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/store"
)

// MaxBatch bounds the items of one CreateBatch.
const MaxBatch = 1000

// BatchItem is one create of a batch, with its own idempotency key.
type BatchItem struct {
	Input commonops.CreateInput
	// IdempotencyKey, when set, makes the item answer its first result
	// again when it is sent again (in this batch's place or alone);
	// RequestHash identifies the item it came with.
	IdempotencyKey string
	RequestHash    string
	// Err, when set, is the item's own problem found before (an item that
	// does not decode): it is answered as is and stores nothing.
	Err error
}

// BatchRequest is a batch create call with who makes it.
type BatchRequest struct {
	TenantID  string
	Requester string
	Items     []BatchItem
}

// BatchResult is the outcome of one item: Created (Replayed when its key
// answered a first create again) or Err, which concerns that item alone.
type BatchResult struct {
	Created  *Created
	Replayed bool
	Err      error
}

// CreateBatch is Create for up to MaxBatch items, stored in one
// transaction: each item is validated, checked against the caller's scope
// and the quotas, and keyed as Create does, and answered on its own. Only
// an error of the store fails the whole batch (nothing is then stored); a
// batch over MaxBatch items is EINVALID.
//
// Quotas are checked once per task type of the batch, before it is stored,
// so a batch may take a tenant up to one batch past CreatesPerMinute.
func (s *Service) CreateBatch(ctx context.Context, r BatchRequest) ([]BatchResult, error) {
	if len(r.Items) > MaxBatch {
		return nil, commonops.Invalid(commonops.FieldError{Field: "tasks", Message: fmt.Sprintf("must have at most %d items, not %d", MaxBatch, len(r.Items))})
	}
	now := s.now()
	results := make([]BatchResult, len(r.Items))
	batch := make([]store.NewTask, 0, len(r.Items))
	index := make([]int, 0, len(r.Items)) // batch position -> item
	quota := map[string]error{}           // by task type
	keyed := map[string]int{}             // item by idempotency key
	for n, it := range r.Items {
		res := &results[n]
		if res.Err = it.Err; res.Err != nil {
			continue
		}
		if len(it.IdempotencyKey) > MaxIdempotencyKeyLen {
			res.Err = commonops.Invalid(commonops.FieldError{Field: "idempotencyKey", Message: fmt.Sprintf("must be at most %d characters", MaxIdempotencyKeyLen)})
			continue
		}
		if res.Err = MayCreate(ctx, it.Input.TaskType); res.Err != nil {
			continue
		}
		c, ch, err := s.prepare(ctx, r.TenantID, r.Requester, it.Input, now)
		if res.Err = err; err != nil {
			continue
		}
		qerr, checked := quota[c.Task.TaskType]
		if !checked {
			qerr = s.checkQuotas(ctx, r.TenantID, c.Task.TaskType, now)
			quota[c.Task.TaskType] = qerr
		}
		if res.Err = qerr; qerr != nil {
			continue
		}
		item := store.NewTask{Task: c.Task, Change: ch}
		if it.IdempotencyKey != "" {
			if first, taken := keyed[it.IdempotencyKey]; taken {
				res.Err = commonops.Invalid(commonops.FieldError{Field: "idempotencyKey", Message: fmt.Sprintf("is the key of item %d of this batch", first)})
				continue
			}
			keyed[it.IdempotencyKey] = n
			body, err := json.Marshal(c)
			if err != nil {
				return nil, fmt.Errorf("encode create response: %w", err)
			}
			item.Idem = &store.Idempotency{TenantID: r.TenantID, Key: it.IdempotencyKey, RequestHash: it.RequestHash, TaskID: c.Task.ID, StatusCode: 201, Response: body, CreatedAt: now}
		}
		res.Created = c
		batch = append(batch, item)
		index = append(index, n)
	}
	priors, err := s.Store.CreateTasks(ctx, batch)
	if err != nil {
		return nil, fmt.Errorf("create batch: %w", err)
	}
	for b, prior := range priors {
		n := index[b]
		res := &results[n]
		if prior == nil {
			s.created(r.TenantID)
			continue
		}
		res.Created = nil
		if prior.RequestHash != r.Items[n].RequestHash {
			res.Err = commonops.Invalid(commonops.FieldError{Field: "idempotencyKey", Message: "was already used with a different request body"})
			continue
		}
		if res.Created, res.Err = decodeCreated(prior); res.Err == nil {
			res.Replayed = true
		}
	}
	return results, nil
}
