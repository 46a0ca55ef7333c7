package commonops

import (
	"context"
	"maps"
)

// actorKey is the context key of WithActor.
type actorKey struct{}

// WithActor returns a copy of ctx carrying actor, who makes the changes
// done with it ("apikey:KEYID", "oidc:SUBJECT", "gateway:USER",
// "none:USER"). The store records it as "actor" in the event data of every
// task event a change made with that context writes, so a task's events
// tell who created, cancelled or retried it. An empty actor records
// nothing.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the actor WithActor put in ctx, or "".
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// EventData returns data with ctx's actor added under "actor" (a copy:
// data is not changed), or data itself when ctx carries no actor. Drivers
// call it on the data of every event they write.
func EventData(ctx context.Context, data map[string]any) map[string]any {
	return withActor(data, Actor(ctx))
}

// withActor is EventData for an actor already read from the context.
func withActor(data map[string]any, actor string) map[string]any {
	if actor == "" {
		return data
	}
	out := maps.Clone(data)
	if out == nil {
		out = map[string]any{}
	}
	out["actor"] = actor
	return out
}
