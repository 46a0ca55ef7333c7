package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that sends its body slower than ReadTimeout, or reads its answer
// never, gives its connection up instead of holding it (and its buffers)
// for as long as it likes: the hardening issue's body at 1 byte/s stayed
// open 80 s.
func TestSlowBodyLosesItsConnection(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/operations/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	start := time.Now()
	stop := time.After(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	closed := make(chan time.Duration, 1)
	go func() {
		// The server answers (or just closes) once the deadline passes.
		br := bufio.NewReader(conn)
		for {
			if _, err := br.ReadByte(); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	for {
		select {
		case d := <-closed:
			if d > 2*time.Second {
				t.Fatalf("the slow body held its connection %s, want about 300ms", d)
			}
			return
		case <-tick.C:
			conn.Write([]byte(" ")) // 20 bytes/s: never done before the deadline
		case <-stop:
			t.Fatal("the server still holds a body sent at 20 bytes/s after 5s with a 300ms read timeout")
		}
	}
}

// An event stream is not cut by the API's deadlines, even on a connection
// whose earlier request set them.
func TestStreamOutlivesRequestDeadlines(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t, func(c *Config) {
		c.ReadTimeout, c.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	})
	var c struct{ Task struct{ ID string } }
	e.do(http.MethodPost, "/api/v1/operations/tasks", `{"taskType":"noop","entityType":"x","scheduledAt":"`+time.Now().Add(240*time.Hour).UTC().Format(time.RFC3339)+`"}`).want(t, http.StatusCreated).decode(t, &c)
	id := c.Task.ID
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	// A plain request first on the same connection, then the stream.
	fmt.Fprintf(conn, "GET /api/v1/operations/tasks/%s HTTP/1.1\r\nHost: x\r\n\r\n", id)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	fmt.Fprintf(conn, "GET /api/v1/operations/tasks/%s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", id)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", resp, err)
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Fatalf("the stream ended after less than 1s with 200ms request deadlines: %v", err)
	case <-time.After(time.Second):
	}
	conn.Close() // ends the stream; reading its body to the end would wait forever
}
