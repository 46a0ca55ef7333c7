package httpapi

import (
	"net/http"
	"time"

	"github.com/commonops/commonops/operations"
)

// queueReport is the JSON of GET /queues (QueueReport in openapi.json).
type queueReport struct {
	Now           time.Time    `json:"now"`
	Since         time.Time    `json:"since"`
	BucketSeconds int          `json:"bucketSeconds"`
	Queues        []queueEntry `json:"queues"`
	Leases        []leaseEntry `json:"leases"`
}

type queueEntry struct {
	TaskType             string   `json:"taskType"`
	Pending              int      `json:"pending"`
	Running              int      `json:"running"`
	OldestWaitingSeconds *float64 `json:"oldestWaitingSeconds"`
	Completed            []int    `json:"completed"`
	Failed               []int    `json:"failed"`
}

type leaseEntry struct {
	TaskID     string    `json:"taskId"`
	TaskType   string    `json:"taskType"`
	EntityType string    `json:"entityType"`
	WorkerID   string    `json:"workerId"`
	Attempt    int       `json:"attempt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// QueueReportJSON is the JSON form of r, as GET /queues answers it and the
// console reads it.
func QueueReportJSON(r operations.QueueReport) any {
	out := queueReport{
		Now: r.Now, Since: r.Since, BucketSeconds: int(r.Bucket / time.Second),
		Queues: make([]queueEntry, 0, len(r.Queues)), Leases: make([]leaseEntry, 0, len(r.Leases)),
	}
	for _, q := range r.Queues {
		e := queueEntry{TaskType: q.TaskType, Pending: q.Pending, Running: q.Running, Completed: q.Completed, Failed: q.Failed}
		if !q.OldestWaiting.IsZero() {
			age := max(r.Now.Sub(q.OldestWaiting).Seconds(), 0)
			e.OldestWaitingSeconds = &age
		}
		out.Queues = append(out.Queues, e)
	}
	for _, l := range r.Leases {
		out.Leases = append(out.Leases, leaseEntry{TaskID: l.TaskID, TaskType: l.TaskType, EntityType: l.EntityType, WorkerID: l.WorkerID, Attempt: l.Attempt, ExpiresAt: l.ExpiresAt})
	}
	return out
}

func handleQueues(s *server) http.Handler {
	return s.api(func(w http.ResponseWriter, r *http.Request) error {
		rep, err := s.svc.Queues(r.Context(), info(r).tenant)
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, QueueReportJSON(rep))
		return nil
	})
}
