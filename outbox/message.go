package outbox

import (
	"encoding/json"
	"time"
)

// Message is one committed event waiting to be published.
type Message struct {
	ID        int64
	TenantID  string
	TaskID    string
	Topic     string
	Payload   json.RawMessage // the task JSON
	CreatedAt time.Time
	Attempts  int
	// TraceParent is the W3C traceparent of the request that made the
	// change (see commonops.WithTraceParent); empty when it carried none.
	TraceParent string
}
