// Package replicatest runs commonops as several replicas, each a process of
// its own with its own daprd, on one PostgreSQL and one broker (Redis
// Streams, then RabbitMQ), and breaks them while a client creates tasks:
// a worker replica and its sidecar are killed with SIGKILL and restarted,
// then every replica is restarted with SIGTERM, one after another. It
// checks what a platform relies on: every task completes exactly once,
// every event leaves the outbox, and a client that retries on connection
// errors with an Idempotency-Key sees no failed request.
//
// TestFlowAcrossProcesses runs three processes on PostgreSQL with the
// embedded bus (no Dapr) and checks issue 16's flow controls across them: a
// task type's concurrency limit, one task per schedule tick while every
// process takes its turn at the maintenance leadership, and one webhook POST
// per terminal task and URL.
package replicatest
