package operations

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/commonops/commonops"
)

// FlowLimitMax bounds a flow control's limit.
const FlowLimitMax = 100000

// flowCacheTTL is how long a create trusts the flow controls it read to
// say whether its queue is paused (queuePaused in its answer).
const flowCacheTTL = time.Second

// FlowScope names the flow control a call reads or changes: the task type's
// for every tenant (All, a platform admin's) or the tenant's own.
type FlowScope struct {
	TenantID string
	All      bool
	TaskType string
}

// tenant is the store's tenant of the scope: "" for every tenant.
func (fs FlowScope) tenant() string {
	if fs.All {
		return ""
	}
	return fs.TenantID
}

// FlowControls returns the flow controls that apply to tenant's tasks (its
// own and those for every tenant), or, with all, every tenant's.
func (s *Service) FlowControls(ctx context.Context, tenant string, all bool) ([]commonops.FlowControl, error) {
	fcs, err := s.Store.ListFlowControls(ctx)
	if err != nil {
		return nil, fmt.Errorf("list flow controls: %w", err)
	}
	if !all {
		fcs = slices.DeleteFunc(fcs, func(fc commonops.FlowControl) bool { return fc.TenantID != "" && fc.TenantID != tenant })
	}
	return fcs, nil
}

// SetFlowLimit sets (limit > 0) or removes (nil) the concurrency limit of
// fs; it holds from the next claim of any replica. A limit below 1 or over
// FlowLimitMax, or a task type commonops does not know, is EINVALID and
// changes nothing.
func (s *Service) SetFlowLimit(ctx context.Context, fs FlowScope, limit *int) (commonops.FlowControl, error) {
	var fe fieldErrors
	if r := IntRanges["limit"]; limit != nil && (int64(*limit) < r.Min || int64(*limit) > r.Max) {
		fe.add("limit", "must be %s, or null for no limit", r)
	}
	if err := s.checkFlowType(ctx, &fe, fs); err != nil {
		return commonops.FlowControl{}, err
	}
	if err := fe.err(); err != nil {
		return commonops.FlowControl{}, err
	}
	return s.updateFlow(ctx, fs, func(fc *commonops.FlowControl) {
		fc.Limit = 0
		if limit != nil {
			fc.Limit = *limit
		}
	})
}

// PauseFlow pauses or resumes fs: no claim of any replica starts a task it
// pauses; running tasks finish, creates still succeed. A task type
// commonops does not know is EINVALID.
func (s *Service) PauseFlow(ctx context.Context, fs FlowScope, paused bool) (commonops.FlowControl, error) {
	var fe fieldErrors
	if err := s.checkFlowType(ctx, &fe, fs); err != nil {
		return commonops.FlowControl{}, err
	}
	if err := fe.err(); err != nil {
		return commonops.FlowControl{}, err
	}
	return s.updateFlow(ctx, fs, func(fc *commonops.FlowControl) { fc.Paused = paused })
}

func (s *Service) updateFlow(ctx context.Context, fs FlowScope, fn func(*commonops.FlowControl)) (commonops.FlowControl, error) {
	fc, err := s.Store.UpdateFlowControl(ctx, fs.tenant(), fs.TaskType, s.now(), func(fc *commonops.FlowControl) error {
		fn(fc)
		return nil
	})
	if err != nil {
		return commonops.FlowControl{}, fmt.Errorf("update flow control of %s: %w", fs.TaskType, err)
	}
	s.flowCache().forget()
	return fc, nil
}

// checkFlowType adds a field error unless fs.TaskType is a task type
// commonops knows: one with a create check (Validators), a flow control
// already, or a task of the tenant.
func (s *Service) checkFlowType(ctx context.Context, fe *fieldErrors, fs FlowScope) error {
	tt := fs.TaskType
	if tt == "" || len(tt) > commonops.MaxNameLen || !commonops.Printable(tt) {
		fe.add("taskType", "must be 1 to %d printable characters", commonops.MaxNameLen)
		return nil
	}
	if _, ok := s.Validators[tt]; ok {
		return nil
	}
	fcs, err := s.Store.ListFlowControls(ctx)
	if err != nil {
		return fmt.Errorf("list flow controls: %w", err)
	}
	if slices.ContainsFunc(fcs, func(fc commonops.FlowControl) bool { return fc.TaskType == tt }) {
		return nil
	}
	_, n, err := s.Store.ListTasks(ctx, commonops.ListFilter{TenantID: fs.TenantID, TaskType: tt, PageSize: 1, CountUpTo: 1})
	if err != nil {
		return fmt.Errorf("look for tasks of type %s: %w", tt, err)
	}
	if n == 0 {
		fe.add("taskType", "is not a task type commonops knows: no task of it in tenant %s, no flow control and no create check", fs.TenantID)
	}
	return nil
}

// SeedFlowControls stores the configured flow controls (--flow-limits)
// that are not stored yet; those stored (by an earlier start or through
// the API) are left as they are, so a restart never undoes an operator's
// change.
func (s *Service) SeedFlowControls(ctx context.Context, fcs []commonops.FlowControl) error {
	for _, want := range fcs {
		_, err := s.Store.UpdateFlowControl(ctx, want.TenantID, want.TaskType, s.now(), func(fc *commonops.FlowControl) error {
			if fc.None() {
				fc.Limit, fc.Paused = want.Limit, want.Paused
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed flow control of %s: %w", want.TaskType, err)
		}
	}
	return nil
}

// queuePaused reports whether a new task of tenant and taskType waits
// behind a pause, from flow controls at most flowCacheTTL old; an error
// reading them reports false (the create does not depend on it).
func (s *Service) queuePaused(ctx context.Context, tenant, taskType string) bool {
	fcs, err := s.flowCache().get(ctx, s)
	if err != nil {
		return false
	}
	_, paused := commonops.FlowRoom(fcs, tenant, taskType, func(string, string) int { return 0 })
	return paused
}

// flowCache keeps the flow controls a create reads for flowCacheTTL.
type flowCache struct {
	mu      sync.Mutex
	fcs     []commonops.FlowControl
	fetched time.Time
}

func (c *flowCache) get(ctx context.Context, s *Service) ([]commonops.FlowControl, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fetched.IsZero() && time.Since(c.fetched) < flowCacheTTL {
		return c.fcs, nil
	}
	fcs, err := s.Store.ListFlowControls(ctx)
	if err != nil {
		return nil, err
	}
	c.fcs, c.fetched = fcs, time.Now()
	return fcs, nil
}

// flowCache returns s's flow cache, made on first use.
func (s *Service) flowCache() *flowCache {
	quotaCacheMade.Lock()
	defer quotaCacheMade.Unlock()
	if s.flow == nil {
		s.flow = &flowCache{}
	}
	return s.flow
}

func (c *flowCache) forget() {
	c.mu.Lock()
	c.fetched = time.Time{}
	c.mu.Unlock()
}

// ParseFlowLimits reads the --flow-limits list: comma-separated
// TYPE=LIMIT (for every tenant) and TENANT/TYPE=LIMIT entries, each limit
// 1 to FlowLimitMax.
func ParseFlowLimits(s string) ([]commonops.FlowControl, error) {
	var fcs []commonops.FlowControl
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		scope, n, ok := strings.Cut(item, "=")
		limit, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil || limit < 1 || limit > FlowLimitMax {
			return nil, fmt.Errorf("flow limit %q: want TYPE=N or TENANT/TYPE=N with N from 1 to %d", item, FlowLimitMax)
		}
		tenant, taskType, ok := strings.Cut(scope, "/")
		if !ok {
			tenant, taskType = "", scope
		}
		tenant, taskType = strings.TrimSpace(tenant), strings.TrimSpace(taskType)
		if taskType == "" || len(taskType) > commonops.MaxNameLen || !commonops.Printable(taskType) || ok && tenant == "" {
			return nil, fmt.Errorf("flow limit %q: want a task type of 1 to %d printable characters and, before a /, a tenant", item, commonops.MaxNameLen)
		}
		fcs = append(fcs, commonops.FlowControl{TenantID: tenant, TaskType: taskType, Limit: limit})
	}
	return fcs, nil
}

// ParseFairWeights reads the --fair-weights list: comma-separated
// TENANT=WEIGHT entries, each weight 1 to 1000.
func ParseFairWeights(s string) (map[string]int, error) {
	weights := map[string]int{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		tenant, n, ok := strings.Cut(item, "=")
		w, err := strconv.Atoi(strings.TrimSpace(n))
		if tenant = strings.TrimSpace(tenant); !ok || err != nil || tenant == "" || w < 1 || w > 1000 {
			return nil, fmt.Errorf("fair weight %q: want TENANT=N with N from 1 to 1000", item)
		}
		weights[tenant] = w
	}
	return weights, nil
}
