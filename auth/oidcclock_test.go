package auth

import (
	"sync/atomic"
	"time"

	"github.com/commonops/commonops/internal/oidctest"
)

// The OIDC tests run a real OpenID Provider (internal/oidctest): tokens
// come from its token endpoint and its keys from its discovery and JWKS
// endpoints.

// oidcConfig is an OIDCConfig for p.
func oidcConfig(p *oidctest.Provider) OIDCConfig {
	return OIDCConfig{Issuer: p.Issuer(), Audience: oidctest.Audience, HTTPClient: p.HTTPClient()}
}

// testClock is the real time plus an offset the test advances, so the
// verifier's clock never lags the OP's.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
