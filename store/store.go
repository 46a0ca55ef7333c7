// Package store is the storage seam of commonops: the one deliberately wide
// interface that the PostgreSQL and SQLite drivers implement, proven by the
// conformance suite in store/storetest.
//
// Every method that changes a task writes, in one transaction, the task row,
// one task_events row and one outbox row for the change's topic, as told by
// the commonops.Change its transition returned. Nothing is published that was
// not committed (the outbox relay reads only committed rows).
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/auth"
	"github.com/commonops/commonops/outbox"
)

// Store is implemented by store/postgres and store/sqlite. Methods that take
// a tenant see only that tenant's rows; the few that work across tenants
// (ClaimNext, Sweep, the outbox, leadership) serve background roles only.
// Errors are *commonops.Error with ENOTFOUND, ECONFLICT, ... where they mean
// one; a database that cannot be reached is EUNAVAILABLE.
type Store interface {
	// CreateTask inserts t and records ch. With a non-empty key, it also
	// records the idempotency key with the request's hash and the response to
	// replay; if the key is already taken it inserts nothing and returns the
	// stored Idempotency (whose RequestHash the caller compares).
	CreateTask(ctx context.Context, t *commonops.Task, ch commonops.Change, idem *Idempotency) (*Idempotency, error)

	// CreateTasks is CreateTask of every item of batch in one transaction:
	// it returns, in batch order, nil for an item it inserted or the stored
	// Idempotency of an item whose key was already taken (which inserted
	// nothing). A key given to two items of the batch is EINVALID, a task id
	// already stored is ECONFLICT; either inserts nothing.
	CreateTasks(ctx context.Context, batch []NewTask) ([]*Idempotency, error)

	// GetTask returns one task of tenant, or ENOTFOUND.
	GetTask(ctx context.Context, tenant, id string) (*commonops.Task, error)

	// ListTasks returns one page of tenant's tasks matching f, and the total
	// (counted up to f.CountUpTo when it is set). The page starts after
	// f.After when it is set (keyset pagination: the sort key, then the id,
	// nulls last in either direction), at (f.Page-1)*f.PageSize otherwise; a
	// cursor for another sort is EINVALID.
	ListTasks(ctx context.Context, f commonops.ListFilter) ([]*commonops.Task, int, error)

	// UpdateTask loads the task, calls fn on it and, if fn succeeds, saves the
	// changed task (optimistic concurrency on Version: a lost race reloads and
	// calls fn again) with ch's event and outbox rows in one transaction. An
	// empty tenant matches any tenant (background roles only). fn's error is
	// returned as is; the returned task is the saved state.
	UpdateTask(ctx context.Context, tenant, id string, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error)

	// UpdateTaskFrom is UpdateTask of known's task, starting from known: a
	// task this process read or saved before. While known is still the stored
	// version a driver may write fn's result without reading the task again;
	// otherwise fn is called on the stored task as by UpdateTask. known is
	// written back as it is, so it must come from the store, never from an
	// event or a request.
	UpdateTaskFrom(ctx context.Context, known *commonops.Task, fn func(*commonops.Task) (commonops.Change, error)) (*commonops.Task, error)

	// DeleteTask deletes a terminal task with its logs and events and returns
	// it (so the caller can delete its files). ECONFLICT when not terminal.
	DeleteTask(ctx context.Context, tenant, id string) (*commonops.Task, error)

	// ClaimTask claims one task of tenant (empty: any) for p.WorkerID with
	// p.Lease at p.Now, if it is of one of p.Kinds (empty: any kind; p.Limit
	// is not used): UpdateTask with (*commonops.Task).CheckKind and Claim,
	// which a driver may write in fewer round trips. ENOTFOUND, or ECONFLICT
	// with the task when it is not runnable or of another kind (wrapping
	// commonops.ErrKindMismatch), or held back by a flow control as
	// ClaimNext would be (commonops.Held, wrapping commonops.ErrHeld).
	ClaimTask(ctx context.Context, tenant, id string, p ClaimParams) (*commonops.Task, error)

	// ClaimNext claims up to p.Limit runnable tasks across tenants, skipping
	// rows other claimers hold. Tenants with runnable tasks take turns by
	// their share: a tenant's next task ranks by (its running tasks + its
	// rank among its own candidates) / its weight (p.Weights, 1 by
	// default), lowest first, ties and each tenant's own tasks by highest
	// priority then oldest. Tasks of a paused type are not claimed, and no
	// claim, of this or any replica, makes more tasks of a type run at once
	// than its flow controls' limits.
	ClaimNext(ctx context.Context, p ClaimParams) ([]*commonops.Task, error)

	// ListFlowControls returns every stored flow control, by task type then
	// tenant (the all-tenants control first).
	ListFlowControls(ctx context.Context) ([]commonops.FlowControl, error)
	// UpdateFlowControl loads the flow control of tenant ("" for all) and
	// taskType (only its scope set when none is stored), calls fn on it and
	// stores the result at now, or deletes it when it holds nothing back
	// (FlowControl.None). fn's error is returned as is.
	UpdateFlowControl(ctx context.Context, tenant, taskType string, now time.Time, fn func(*commonops.FlowControl) error) (commonops.FlowControl, error)

	// Sweep returns references to tasks matching f across tenants, for the
	// maintenance jobs; each is then changed through UpdateTask or DeleteTask.
	Sweep(ctx context.Context, f SweepFilter) ([]TaskRef, error)

	// AppendLogs adds log lines to a task. With attempt set, lines from a stale
	// attempt are refused with ECONFLICT.
	AppendLogs(ctx context.Context, tenant, taskID string, attempt *int, logs []commonops.LogEntry) error
	// ListLogs returns a page of a task's logs, oldest first, and the total.
	ListLogs(ctx context.Context, f commonops.LogFilter) ([]commonops.LogEntry, int, error)
	// ListEvents returns a task's events with id > afterID, oldest first.
	ListEvents(ctx context.Context, tenant, taskID string, afterID int64, limit int) ([]commonops.Event, error)
	// ListTenantEvents returns up to f.Limit events of f.TenantID with an id
	// above f.AfterID whose task type, entity type, status after the change
	// and requester match f's (unset: any), oldest first. A deleted task's
	// events are gone with it.
	ListTenantEvents(ctx context.Context, f commonops.EventFilter) ([]commonops.Event, error)
	// ListEventsAfter returns up to limit events of every task and tenant
	// with id > afterID, in id order (the primary key), and last: the
	// largest event id stored (0 when none), so that a reader can start at
	// the head. It serves the event feed (a background role). Ids are
	// assigned at insert, so on PostgreSQL a row may commit after rows with
	// larger ids: a reader that must not skip one waits for gaps to fill
	// (see feed.Feed).
	ListEventsAfter(ctx context.Context, afterID int64, limit int) (events []commonops.Event, last int64, err error)

	// DeliverOutbox locks up to limit unsent outbox rows (oldest first,
	// skipping rows another relay holds), calls publish with them and marks
	// sent the first n it reports (or deletes them, where the driver is
	// configured to). It returns how many it marked.
	DeliverOutbox(ctx context.Context, limit int, publish func(context.Context, []outbox.Message) (int, error)) (int, error)
	// OutboxStats reports the unsent backlog and the creation time of its
	// oldest row (zero when empty).
	OutboxStats(ctx context.Context) (backlog int, oldest time.Time, err error)
	// PruneOutbox deletes up to limit rows sent before the given time.
	PruneOutbox(ctx context.Context, sentBefore time.Time, limit int) (int, error)
	// OutboxSignal receives (without blocking the sender) after a transaction
	// that wrote outbox rows commits, in this process or, on PostgreSQL, in
	// any replica (LISTEN/NOTIFY).
	OutboxSignal() <-chan struct{}

	// TryLead takes or renews the named leadership for holder until
	// now+ttl, and reports whether holder leads. Resign gives it up.
	TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	Resign(ctx context.Context, name, holder string) error

	// TenantUsage measures what tenant holds, for the quotas (see Usage and
	// UsageQuery); each count stops at its bound, so its cost does not
	// grow with the tenant's history.
	TenantUsage(ctx context.Context, tenant string, q UsageQuery) (Usage, error)
	// QueueStats measures the queues of q.TenantID (empty: every tenant,
	// for the metrics) by task type: what waits and runs now, what
	// completed and failed in the window from q.Since to q.Now, and up to
	// q.LeaseLimit active leases, those expiring first first.
	QueueStats(ctx context.Context, q QueueQuery) (QueueStats, error)
	// CreateAPIKey stores a new API key (auth.APIKey.Hash, never the key).
	// ECONFLICT when its id or hash is taken.
	CreateAPIKey(ctx context.Context, k *auth.APIKey) error
	// GetAPIKeyByHash returns the key whose hash is hash, revoked and
	// expired ones included (the caller tells why it refuses them), or
	// ENOTFOUND. It serves authentication across tenants.
	GetAPIKeyByHash(ctx context.Context, hash string) (*auth.APIKey, error)
	// ListAPIKeys returns tenant's keys, revoked ones included, newest
	// first.
	ListAPIKeys(ctx context.Context, tenant string) ([]*auth.APIKey, error)
	// RevokeAPIKey marks tenant's key id revoked at now and returns it; a
	// key revoked before keeps its first revocation time. ENOTFOUND for a
	// key of another tenant or none.
	RevokeAPIKey(ctx context.Context, tenant, id string, now time.Time) (*auth.APIKey, error)
	// TouchAPIKeys records when keys were last used, by key id; a time
	// older than the one stored is ignored, as is an unknown id.
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error

	// ClaimDeliveries takes up to limit webhook deliveries across tenants
	// that are pending and due at now (nextAttemptAt <= now), oldest due
	// first, skipping rows another dispatcher holds, and holds them until
	// now+lease by moving their nextAttemptAt there, so a dispatcher that
	// dies mid-attempt hands them on. They carry their Payload and no
	// Attempts. A limit below 1 is EINVALID.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*commonops.Delivery, error)
	// RecordDeliveryAttempt stores d's last attempt (the last of
	// d.Attempts) and d's status, attempt count, next attempt and delivery
	// time as (*commonops.Delivery).Record left them. ENOTFOUND for an
	// unknown delivery. A delivery it finishes (delivered or failed) whose
	// task has been deleted is deleted with its attempts: DeleteTask keeps
	// only pending deliveries, until they finish.
	RecordDeliveryAttempt(ctx context.Context, d *commonops.Delivery) error
	// ListDeliveries returns the webhook deliveries of tenant's task, oldest
	// first, each with its attempts in order and without its Payload; none
	// for an unknown task.
	ListDeliveries(ctx context.Context, tenant, taskID string) ([]*commonops.Delivery, error)
	// DeliveryBacklog counts the pending webhook deliveries of every tenant
	// (due or waiting for a retry) and answers when the oldest of them was
	// written (zero when none is pending), from the pending rows only.
	DeliveryBacklog(ctx context.Context) (pending int64, oldest time.Time, err error)
	// CreateSubscription stores a webhook subscription; a taken id is
	// ECONFLICT. From its commit on, each terminal status of its tenant's
	// tasks of its task type ("*": any) writes a delivery to its URL.
	CreateSubscription(ctx context.Context, sub *commonops.Subscription) error
	// ListSubscriptions returns tenant's subscriptions, oldest first.
	ListSubscriptions(ctx context.Context, tenant string) ([]*commonops.Subscription, error)
	// DeleteSubscription deletes tenant's subscription id; ENOTFOUND for
	// one of another tenant or none. Deliveries already written for it are
	// still sent.
	DeleteSubscription(ctx context.Context, tenant, id string) error
	// CreateSchedule stores a new schedule. ECONFLICT when its id is taken.
	CreateSchedule(ctx context.Context, sc *commonops.Schedule) error
	// GetSchedule returns one schedule of tenant, or ENOTFOUND.
	GetSchedule(ctx context.Context, tenant, id string) (*commonops.Schedule, error)
	// ListSchedules returns up to limit of tenant's schedules whose id sorts
	// after afterID (empty: from the first), in id order.
	ListSchedules(ctx context.Context, tenant, afterID string, limit int) ([]*commonops.Schedule, error)
	// UpdateSchedule loads tenant's schedule id, calls fn on it and, if fn
	// succeeds, saves it with Version one more, guarded by the version it
	// loaded: a lost race (a tick fired meanwhile) reloads and calls fn
	// again. fn's error is returned as is; ENOTFOUND when there is none.
	UpdateSchedule(ctx context.Context, tenant, id string, fn func(*commonops.Schedule) error) (*commonops.Schedule, error)
	// DeleteSchedule deletes tenant's schedule id (the tasks it created
	// stay), or answers ENOTFOUND.
	DeleteSchedule(ctx context.Context, tenant, id string) error
	// DueSchedules returns up to limit schedules across tenants that are not
	// paused and whose NextRunAt is at or before now, earliest first. It
	// serves the maintenance role.
	DueSchedules(ctx context.Context, now time.Time, limit int) ([]*commonops.Schedule, error)
	// FireSchedule fires one tick in one transaction: only if the schedule
	// is not paused and its NextRunAt still equals f.Tick, it sets NextRunAt
	// to f.Next and LastRunAt to f.Tick, bumps Version and, with f.Task,
	// creates that task with f.Change's event and outbox rows and records it
	// as LastTaskID. It reports whether it fired; false means another
	// replica (or an update) came first and nothing was written, so any
	// number of replicas firing the same tick create one task.
	FireSchedule(ctx context.Context, f ScheduleFire) (bool, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// ReadTimeoutDefault bounds each of the reads the API serves (GetTask,
// ListTasks, ListLogs, ListEvents) in both drivers, unless their Config
// says otherwise: a search over millions of tasks must not hold a
// connection and a core for seconds while other requests queue behind it.
const ReadTimeoutDefault = 5 * time.Second

// ReadTimeoutError is the error of a read stopped after limit: EUNAVAILABLE
// (503 with Retry-After), whose message tells the client to narrow the
// query, since the same query is likely to take as long again. cause is kept
// for the logs.
func ReadTimeoutError(limit time.Duration, cause error) error {
	return &commonops.Error{
		Code:    commonops.EUNAVAILABLE,
		Message: fmt.Sprintf("the query took longer than %s; narrow the filters or the search", limit),
		Err:     cause,
	}
}

// UsageQuery says which of a tenant's figures TenantUsage measures. A
// figure whose bound is 0 (or, for the heavy tasks, with no types; for the
// bytes, false) is not measured and reads 0.
type UsageQuery struct {
	// CreatedAfter and CreatedUpTo count the tasks created after the time,
	// up to CreatedUpTo.
	CreatedAfter time.Time
	CreatedUpTo  int
	// HeavyTypes and HeavyUpTo count the unfinished (scheduled, pending or
	// processing) tasks of these task types, up to HeavyUpTo.
	HeavyTypes []string
	HeavyUpTo  int
	// StoredBytes sums the tasks' StoredBytes.
	StoredBytes bool
}

// Usage is what a tenant holds, as TenantUsage measured it.
type Usage struct {
	// Created is the count of tasks created after UsageQuery.CreatedAfter
	// (at most CreatedUpTo), FirstCreated the creation time of the oldest
	// of them (zero when none).
	Created      int
	FirstCreated time.Time
	// Heavy is the count of unfinished tasks of UsageQuery.HeavyTypes (at
	// most HeavyUpTo).
	Heavy int
	// StoredBytes is the sum of the tenant's tasks' StoredBytes.
	StoredBytes int64
}

// NewTask is one item of a CreateTasks batch: what CreateTask takes.
type NewTask struct {
	Task   *commonops.Task
	Change commonops.Change
	// Idem is the item's idempotency key, or nil.
	Idem *Idempotency
}

// QueueQuery says whose queues QueueStats measures and over which window.
type QueueQuery struct {
	// TenantID is the tenant measured; empty measures every tenant (the
	// metrics, a background role).
	TenantID string
	// Now is the end of the history window and the time the waiting ages
	// are measured against.
	Now time.Time
	// Since is the start of the history window, cut into buckets of Bucket
	// (the last one may be shorter). A zero Bucket reads no history.
	Since  time.Time
	Bucket time.Duration
	// LeaseLimit bounds the active leases listed; 0 lists none.
	LeaseLimit int
}

// QueueStats is what QueueStats measured.
type QueueStats struct {
	// Queues has one entry per task type that has a task pending or
	// processing, or one that completed or failed in the window, in task
	// type order.
	Queues []Queue
	// Leases are the active leases, those expiring first first.
	Leases []Lease
}

// Queue is one task type's queue.
type Queue struct {
	TaskType string
	// Pending counts the pending tasks (waiting for a worker, for a retry's
	// backoff or for their input file), Running the processing ones.
	Pending int
	Running int
	// OldestWaiting is since when the longest-waiting claimable task has
	// waited: its last state change, or the end of its backoff (zero when
	// none is claimable).
	OldestWaiting time.Time
	// Completed and Failed count the tasks that ended so in each bucket of
	// the window, oldest bucket first; both have one entry per bucket.
	Completed []int
	Failed    []int
}

// Lease is a processing task held by a worker.
type Lease struct {
	TaskID     string
	TaskType   string
	EntityType string
	WorkerID   string
	Attempt    int
	ExpiresAt  time.Time
}

// Buckets is the number of history buckets of q: the window from Since to
// Now cut into Bucket-long pieces, the last one possibly shorter.
func (q QueueQuery) Buckets() int {
	if q.Bucket <= 0 || !q.Now.After(q.Since) {
		return 0
	}
	return int((q.Now.Sub(q.Since) + q.Bucket - 1) / q.Bucket)
}

// Queue returns the entry of taskType in queues, adding it in task type
// order with q's buckets when it is missing. The drivers build QueueStats
// with it.
func (q QueueQuery) Queue(queues *[]Queue, taskType string) *Queue {
	i, found := slices.BinarySearchFunc(*queues, taskType, func(e Queue, t string) int { return strings.Compare(e.TaskType, t) })
	if !found {
		n := q.Buckets()
		*queues = slices.Insert(*queues, i, Queue{TaskType: taskType, Completed: make([]int, n), Failed: make([]int, n)})
	}
	return &(*queues)[i]
}

// Idempotency is a stored Idempotency-Key and the response it produced.
type Idempotency struct {
	TenantID    string
	Key         string
	RequestHash string
	TaskID      string
	StatusCode  int
	Response    json.RawMessage
	CreatedAt   time.Time
}

// SortColumns maps each of commonops.SortFields to its column, named alike in every
// driver's schema.
var SortColumns = map[string]string{
	"createdAt":   "created_at",
	"updatedAt":   "updated_at",
	"priority":    "priority",
	"status":      "status",
	"progress":    "progress",
	"scheduledAt": "scheduled_at",
	"completedAt": "completed_at",
}

// ClaimParams selects tasks for ClaimNext and ClaimTask.
type ClaimParams struct {
	WorkerID string
	Lease    time.Duration
	Limit    int
	Now      time.Time
	// Kinds restricts the claim to these (taskType, entityType) pairs, where
	// "*" matches any; empty matches every task.
	Kinds []commonops.Kind
	// Weights are the tenants' weights in ClaimNext's turns; a tenant not
	// named, or named with a weight below 1, weighs 1.
	Weights map[string]int
	// Usage is each tenant's recent use, in tasks, that ClaimNext adds to
	// its running tasks in its share: with it a tenant that has been
	// claiming steadily yields the next slots to one that has not, beyond
	// an even split of the running tasks. A tenant not named has none.
	Usage map[string]float64
}

// SweepFilter selects tasks across tenants for a maintenance job. Set fields
// combine with AND; Limit is required.
//
// Sweep returns tasks in id order (ids are UUIDv7, so this is creation order
// to the millisecond), which AfterID pages through: a job that cannot change
// every task it is handed (a conflict, an upload not there yet) passes the id
// of the last ref of one page as AfterID of the next, so the tasks it skips
// do not fill every batch and starve the ones behind them; a page shorter than
// Limit means the end was reached and the next sweep starts over with an
// empty AfterID.
type SweepFilter struct {
	Statuses []commonops.Status
	// UploadStatus keeps the tasks in this upload status.
	UploadStatus commonops.UploadStatus
	// UploadStatuses keeps the tasks in any of these upload statuses.
	UploadStatuses      []commonops.UploadStatus
	ScheduledBefore     *time.Time // scheduledAt <= t
	LeaseExpiredBefore  *time.Time // leaseExpiresAt <= t
	UploadExpiredBefore *time.Time // uploadExpiresAt <= t
	CreatedBefore       *time.Time // createdAt <= t
	UpdatedBefore       *time.Time // updatedAt <= t (pending since: the last state change)
	CompletedBefore     *time.Time // completedAt <= t
	AvailableBefore     *time.Time // availableAt is null or <= t (not backing off past t)
	// DeadlineBefore keeps the tasks with a timeoutSeconds whose
	// startedAt + timeoutSeconds <= t (see commonops.Task.Deadline).
	DeadlineBefore *time.Time
	// AfterID keeps the tasks whose id sorts after it: the keyset cursor of
	// the next page. Empty starts from the first task.
	AfterID string
	Limit   int
}

// TaskRef names a task across tenants.
type TaskRef struct {
	TenantID string
	ID       string
}

// ScheduleFire is one tick of a schedule, as FireSchedule writes it.
type ScheduleFire struct {
	TenantID string
	ID       string
	// Tick is the NextRunAt the firer read; Next the tick after it.
	Tick time.Time
	Next time.Time
	// Now is the schedule's new UpdatedAt.
	Now time.Time
	// Task, when set, is created with Change's rows; nil advances the
	// schedule without a task (a skipped tick).
	Task   *commonops.Task
	Change commonops.Change
}

// Topics is the set of topics a store writes outbox rows for (its Config's
// Topics): nil holds every topic. A change of another topic still records
// its event and its webhook deliveries; only the message to the bus is left
// out, for a bus that would deliver it to no one (the embedded bus, whose
// only subscriber is the worker: commonops.WorkerTopics).
type Topics map[string]bool

// NewTopics is the set of topics, nil (every topic) for a nil slice.
func NewTopics(topics []string) Topics {
	if topics == nil {
		return nil
	}
	s := make(Topics, len(topics))
	for _, t := range topics {
		s[t] = true
	}
	return s
}

// Has reports whether a change of topic writes an outbox row: never for
// no topic.
func (s Topics) Has(topic string) bool { return topic != "" && (s == nil || s[topic]) }

// ChangePayload is the task's JSON a change of topic writes into its
// outbox row (queued: the topic is one of the store's Topics) and into its
// webhook deliveries (commonops.Notifies(topic)): the whole task, or with
// header (the drivers' Config.HeaderPayload) the task's header when only
// the outbox row takes it, since a delivery needs the whole task. nil when
// the change writes neither.
func ChangePayload(t *commonops.Task, topic string, queued, header bool) ([]byte, error) {
	notifies := commonops.Notifies(topic)
	switch {
	case !queued && !notifies:
		return nil, nil
	case header && !notifies:
		return t.AppendHeaderJSON(make([]byte, 0, 256))
	default:
		return t.AppendJSON(make([]byte, 0, commonops.TaskJSONSize))
	}
}
