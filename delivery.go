package commonops

import (
	"encoding/json"
	"time"
)

// DeliveryStatus is where a webhook delivery is: pending until an attempt
// succeeds (delivered) or the retries run out (failed).
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is the notification of one task's terminal status to one URL:
// the task's callbackUrl or a subscription's. It is written in the
// transaction of the status change, so a crash never loses one, and a
// dispatcher (package webhook) POSTs it until it is delivered or gives up.
type Delivery struct {
	ID       int64  `json:"id"`
	TenantID string `json:"tenantId"`
	TaskID   string `json:"taskId"`
	// SubscriptionID names the subscription the delivery is for; null for
	// the task's own callbackUrl.
	SubscriptionID *string `json:"subscriptionId"`
	URL            string  `json:"url"`
	// EventType is the topic of the change: operations.task.completed,
	// .failed or .cancelled.
	EventType    string         `json:"eventType"`
	Status       DeliveryStatus `json:"status"`
	AttemptCount int            `json:"attemptCount"`
	// NextAttemptAt is when a pending delivery is tried next; null once it
	// is delivered or failed.
	NextAttemptAt *time.Time        `json:"nextAttemptAt"`
	CreatedAt     time.Time         `json:"createdAt"`
	DeliveredAt   *time.Time        `json:"deliveredAt"`
	Attempts      []DeliveryAttempt `json:"attempts"`
	// Payload is the task as the change committed it. Internal: the body
	// the dispatcher sends carries it.
	Payload json.RawMessage `json:"-"`
}

// DeliveryAttempt is one POST of a delivery and what came of it.
type DeliveryAttempt struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// OK is true when the endpoint answered 2xx.
	OK bool `json:"ok"`
	// StatusCode is the endpoint's answer; null when none came (refused,
	// timed out).
	StatusCode *int `json:"statusCode"`
	// Error says why the attempt failed; null when it succeeded.
	Error      *string `json:"error"`
	DurationMs int64   `json:"durationMs"`
}

// Record applies attempt a to d: delivered when a succeeded, otherwise
// pending until next, or failed for good when next is nil.
func (d *Delivery) Record(a DeliveryAttempt, next *time.Time) {
	d.AttemptCount = a.Attempt
	d.Attempts = append(d.Attempts, a)
	switch {
	case a.OK:
		d.Status, d.NextAttemptAt = DeliveryDelivered, nil
		at := a.At
		d.DeliveredAt = &at
	case next != nil:
		d.Status, d.NextAttemptAt = DeliveryPending, next
	default:
		d.Status, d.NextAttemptAt = DeliveryFailed, nil
	}
}

// Subscription asks for a delivery of every terminal status of a tenant's
// tasks of one task type ("*": every type) to URL.
type Subscription struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenantId"`
	TaskType  string    `json:"taskType"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"createdAt"`
}

// Notifies reports whether a change with this topic is a task's terminal
// status, which its callbackUrl and the matching subscriptions are told of.
func Notifies(topic string) bool {
	return topic == TopicCompleted || topic == TopicFailed || topic == TopicCancelled
}
