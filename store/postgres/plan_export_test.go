package postgres

// GetTaskSQL is the GET's statement, for tests that find it among a
// connection's prepared statements.
var GetTaskSQL = getTaskSQL
