package worker

import (
	"fmt"
	"sync"

	"github.com/commonops/commonops"
)

// Registry maps (taskType, entityType) to a Processor. "*" in either place
// matches any value; an exact match wins over a wildcard, and a wildcard
// entityType over a wildcard taskType.
type Registry struct {
	mu    sync.RWMutex
	procs map[commonops.Kind]Processor
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{procs: make(map[commonops.Kind]Processor)} }

// Register adds p for (taskType, entityType). It panics on an empty name or
// a duplicate registration, which are programming errors.
func (r *Registry) Register(taskType, entityType string, p Processor) {
	if taskType == "" || entityType == "" || p == nil {
		panic("worker: Register needs a taskType, an entityType and a processor")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := commonops.Kind{TaskType: taskType, EntityType: entityType}
	if _, dup := r.procs[k]; dup {
		panic(fmt.Sprintf("worker: a processor is already registered for (%s, %s)", taskType, entityType))
	}
	r.procs[k] = p
}

// Lookup returns the processor for a task of (taskType, entityType).
func (r *Registry) Lookup(taskType, entityType string) (Processor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range []commonops.Kind{
		{TaskType: taskType, EntityType: entityType},
		{TaskType: taskType, EntityType: "*"},
		{TaskType: "*", EntityType: entityType},
		{TaskType: "*", EntityType: "*"},
	} {
		if p, ok := r.procs[k]; ok {
			return p, true
		}
	}
	return nil, false
}

// Kinds lists the registered pairs, for claiming only what this worker runs.
func (r *Registry) Kinds() []commonops.Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kinds := make([]commonops.Kind, 0, len(r.procs))
	for k := range r.procs {
		kinds = append(kinds, k)
	}
	return kinds
}
