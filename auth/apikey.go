package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"
)

// KeyPrefix starts every API key, so that a key pasted into a chat or a
// repository is recognisable (and a secret scanner can be taught it).
const KeyPrefix = "co_"

// An API key reads co_<id>_<secret>: the id (10 random bytes) names the key
// in listings, logs and audit events; the secret (32 random bytes) is what
// proves it. Both are lowercase base32 without padding.
const (
	keyIDBytes     = 10
	keySecretBytes = 32
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var (
	keyIDLen     = keyEncoding.EncodedLen(keyIDBytes)
	keySecretLen = keyEncoding.EncodedLen(keySecretBytes)
	keyLen       = len(KeyPrefix) + keyIDLen + 1 + keySecretLen
)

// APIKey is a stored API key: everything but the key itself, of which only
// its hash is kept (see HashKey).
type APIKey struct {
	// ID names the key; it is part of the key, so a request's logs and
	// events name the key without holding its secret.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Name is a label for humans ("ci-uploader").
	Name  string `json:"name"`
	Roles []Role `json:"roles"`
	// TaskTypes, when not empty, limits the task types the key may create
	// or, as a worker, claim.
	TaskTypes []string `json:"taskTypes"`
	// PlatformAdmin keys may act in every tenant.
	PlatformAdmin bool `json:"platformAdmin"`
	// Hash is HashKey of the key; never shown.
	Hash string `json:"-"`
	// CreatedBy is the actor that created the key.
	CreatedBy  string     `json:"createdBy"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
}

// Principal is who a request made with k runs as.
func (k *APIKey) Principal() *Principal {
	return &Principal{
		Tenant: k.Tenant, Subject: k.ID, KeyID: k.ID, Mode: ModeAPIKey,
		Roles: k.Roles, TaskTypes: k.TaskTypes, PlatformAdmin: k.PlatformAdmin,
	}
}

// Usable reports why k cannot authenticate a request at now ("" when it
// can): revoked or expired.
func (k *APIKey) Usable(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "the API key " + k.ID + " was revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "the API key " + k.ID + " has expired"
	}
	return ""
}

// NewKey returns a new random API key, its id and its hash.
func NewKey() (key, id, hash string) {
	var b [keyIDBytes + keySecretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id = keyEncoding.EncodeToString(b[:keyIDBytes])
	key = KeyPrefix + id + "_" + keyEncoding.EncodeToString(b[keyIDBytes:])
	return key, id, HashKey(key)
}

// HashKey is what the store keeps of key: its SHA-256, in hex. A fast hash
// is right here, unlike for passwords: a key carries 256 random bits, so
// no amount of hashing speed makes guessing one from its hash feasible, and
// a fast hash keeps the check of every request cheap.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// IsKey reports whether a bearer token is meant as an API key (it starts
// with KeyPrefix); whether it is a valid one is ParseKey's question.
func IsKey(token string) bool { return strings.HasPrefix(token, KeyPrefix) }

// ParseKey returns the id of a well-formed API key, or ok=false.
func ParseKey(key string) (id string, ok bool) {
	if len(key) != keyLen || !IsKey(key) {
		return "", false
	}
	rest := key[len(KeyPrefix):]
	if rest[keyIDLen] != '_' {
		return "", false
	}
	id, secret := rest[:keyIDLen], rest[keyIDLen+1:]
	if !keyChars(id) || !keyChars(secret) {
		return "", false
	}
	return id, true
}

// keyChars reports whether s is all characters of keyEncoding.
func keyChars(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
