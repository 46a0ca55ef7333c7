package operations

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/commonops/commonops"
)

// URLChecker says why a URL may not receive webhooks (webhook.Guard).
type URLChecker interface {
	CheckURL(raw string) error
}

// webhookURLProblem says why the service would not send webhooks to url
// (any, when it sends none: Service.Webhooks unset), or "".
func (s *Service) webhookURLProblem(url string) string {
	if s.Webhooks == nil {
		return "this service sends no webhooks (it has no --webhook-secret)"
	}
	if err := s.Webhooks.CheckURL(url); err != nil {
		return err.Error()
	}
	return ""
}

// checkCallback refuses a task's callbackUrl the service would not send to.
func (s *Service) checkCallback(t *commonops.Task) error {
	if t.CallbackURL == nil {
		return nil
	}
	if msg := s.webhookURLProblem(*t.CallbackURL); msg != "" {
		return commonops.Invalid(commonops.FieldError{Field: "callbackUrl", Message: msg})
	}
	return nil
}

// Deliveries returns the webhook deliveries of a task, oldest first, with
// their attempts; ENOTFOUND for an unknown task.
func (s *Service) Deliveries(ctx context.Context, tenant, id string) ([]*commonops.Delivery, error) {
	if _, err := s.getScoped(ctx, tenant, id); err != nil {
		return nil, err
	}
	ds, err := s.Store.ListDeliveries(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of task %s: %w", id, err)
	}
	return ds, nil
}

// SubscriptionInput is the body of POST /webhooks.
type SubscriptionInput struct {
	TaskType string `json:"taskType"`
	URL      string `json:"url"`
}

// MaxSubscriptions bounds the subscriptions of one tenant: each terminal
// status writes a delivery per matching subscription in its transaction.
const MaxSubscriptions = 20

// CreateSubscription subscribes in.URL to the terminal statuses of
// tenant's tasks of in.TaskType ("*": all). EINVALID for a task type that
// is not a name or "*", a URL the service would not send to, or a tenant
// that has MaxSubscriptions already.
func (s *Service) CreateSubscription(ctx context.Context, tenant string, in SubscriptionInput) (*commonops.Subscription, error) {
	var fields []commonops.FieldError
	if in.TaskType != "*" {
		if msg := commonops.NameProblem(in.TaskType); msg != "" {
			fields = append(fields, commonops.FieldError{Field: "taskType", Message: msg + `, or "*" for every task type`})
		}
	}
	if msg := s.webhookURLProblem(in.URL); msg != "" {
		fields = append(fields, commonops.FieldError{Field: "url", Message: msg})
	}
	if len(fields) > 0 {
		return nil, commonops.Invalid(fields...)
	}
	subs, err := s.Store.ListSubscriptions(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	if len(subs) >= MaxSubscriptions {
		return nil, commonops.Errorf(commonops.EINVALID, "tenant %s has %d webhook subscriptions, the most there may be; delete one first", tenant, len(subs))
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("subscription id: %w", err)
	}
	sub := &commonops.Subscription{ID: id.String(), TenantID: tenant, TaskType: in.TaskType, URL: in.URL, CreatedAt: s.now()}
	if err := s.Store.CreateSubscription(ctx, sub); err != nil {
		return nil, fmt.Errorf("create subscription: %w", err)
	}
	return sub, nil
}

// Subscriptions returns tenant's webhook subscriptions, oldest first.
func (s *Service) Subscriptions(ctx context.Context, tenant string) ([]*commonops.Subscription, error) {
	subs, err := s.Store.ListSubscriptions(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return subs, nil
}

// DeleteSubscription deletes tenant's subscription id; ENOTFOUND for an
// unknown one. Deliveries already written for it are still sent.
func (s *Service) DeleteSubscription(ctx context.Context, tenant, id string) error {
	return s.Store.DeleteSubscription(ctx, tenant, id)
}

// deliverySignaller is a store that wakes its readers after commits that
// may have written webhook deliveries (both drivers).
type deliverySignaller interface {
	DeliverySignal() (signal <-chan struct{}, stop func())
}

// DeliverySignal gives the webhook dispatcher its own wake-up after each
// commit of a terminal status in this process, where the store can signal
// (both drivers can); otherwise a channel that never fires.
func (s *Service) DeliverySignal() (<-chan struct{}, func()) {
	if c, ok := s.Store.(deliverySignaller); ok {
		return c.DeliverySignal()
	}
	return nil, func() {}
}
