package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The headers of a delivery (after the Standard Webhooks convention).
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// TenantKey is the signing key of tenant's deliveries: the hex HMAC-SHA256
// of the tenant id under the service secret (--webhook-secret). Each tenant
// verifies with its own key and cannot forge another's; an operator hands
// it out (printf %s "$TENANT" | openssl dgst -sha256 -hmac "$SECRET").
func TenantKey(secret, tenant string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tenant))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign is the Webhook-Signature value of body sent at ts under key:
// "v1=" and the hex HMAC-SHA256 of "<unix seconds>.<body>".
func Sign(key string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's under key with the timestamp
// header value timestamp, and the timestamp is within tolerance of now: the
// check a receiver makes (README, Completion webhooks).
func Verify(key, timestamp, signature string, body []byte, tolerance time.Duration, now time.Time) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(key, ts, body)), []byte(signature))
}
