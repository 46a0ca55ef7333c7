package operations

import (
	"cmp"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/commonops/commonops"
)

// FairHalfLifeDefault is how fast a tenant's recent use fades from its
// share of the claims: half of it every 2 s.
const FairHalfLifeDefault = 2 * time.Second

// fairUseFloor is the use below which a tenant is forgotten: less than a
// tenth of a task changes no turn that matters.
const fairUseFloor = 0.1

// fairUse is the recent use of each tenant, in claimed tasks, fading with
// a half-life: the memory of the claims' turns (store.ClaimParams.Usage).
// Running tasks alone split the slots evenly between busy tenants, so a
// tenant whose 100 tasks arrive behind another's 20,000 gets only every
// other freed slot once it runs as many; with the other's steady claims
// remembered, the newcomer takes the next slots until its use catches up,
// and two tenants that both stay busy still split them by weight. Each
// process remembers its own claims: across replicas every one favours a
// tenant it has not served lately, which is the same rule.
type fairUse struct {
	mu       sync.Mutex
	halfLife time.Duration
	use      map[string]float64
	at       time.Time // when use was last brought to date
}

// fade brings the use to date at now. u.mu is held.
func (u *fairUse) fade(now time.Time) {
	if elapsed := now.Sub(u.at); elapsed > 0 {
		f := math.Exp2(-elapsed.Seconds() / u.halfLife.Seconds())
		for t, v := range u.use {
			if v *= f; v < fairUseFloor {
				delete(u.use, t)
			} else {
				u.use[t] = v
			}
		}
		u.at = now
	}
}

// add records a claim of each task's tenant at now.
func (u *fairUse) add(claimed []*commonops.Task, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fade(now)
	for _, t := range claimed {
		u.use[t.TenantID]++
	}
}

// snapshot returns every remembered tenant's use at now.
func (u *fairUse) snapshot(now time.Time) map[string]float64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fade(now)
	if len(u.use) == 0 {
		return nil
	}
	return maps.Clone(u.use)
}

// fairUseMade guards the making of a Service's fairUse (a Service may be
// copied before its first use, so it holds no lock of its own).
var fairUseMade sync.Mutex

// fairUse returns s's memory of the tenants' use, made on first use; nil
// when FairHalfLife turns it off.
func (s *Service) fairUse() *fairUse {
	if s.FairHalfLife < 0 {
		return nil
	}
	fairUseMade.Lock()
	defer fairUseMade.Unlock()
	if s.use == nil {
		s.use = &fairUse{halfLife: cmp.Or(s.FairHalfLife, FairHalfLifeDefault), use: map[string]float64{}}
	}
	return s.use
}

// recordClaims adds the claimed tasks to their tenants' use.
func (s *Service) recordClaims(claimed ...*commonops.Task) {
	if u := s.fairUse(); u != nil && len(claimed) > 0 {
		u.add(claimed, s.now())
	}
}

// usage is the tenants' use for a claim's turns (nil when off).
func (s *Service) usage() map[string]float64 {
	if u := s.fairUse(); u != nil {
		return u.snapshot(s.now())
	}
	return nil
}
