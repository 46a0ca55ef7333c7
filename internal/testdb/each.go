package testdb

import (
	"testing"

	"github.com/commonops/commonops/store"
)

// Each runs fn as the subtests "sqlite" and "postgres", each with a fresh
// store of that driver. fn may call t.Parallel. Under -short the "postgres"
// subtest skips and the "sqlite" one still runs.
func Each(t *testing.T, fn func(t *testing.T, s store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// EachB is Each for benchmarks: the sub-benchmarks "sqlite" and
// "postgres", each with a fresh store of that driver ("postgres" skips
// under -short).
func EachB(b *testing.B, fn func(b *testing.B, s store.Store)) {
	b.Helper()
	b.Run("sqlite", func(b *testing.B) { fn(b, SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, Postgres(b)) })
}
