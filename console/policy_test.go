package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/commonops/commonops/console"
)

// The pages may connect to their own origin and to the origins they are
// given (the object store's, for uploads), and to nothing else.
func TestConnectOrigins(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		origins []string
		want    string
	}{
		{"own origin only", nil, "connect-src 'self';"},
		{"and the object store", []string{"https://files.example.com"}, "connect-src 'self' https://files.example.com;"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The style sheet is served without calling the API.
			h := console.New(console.Config{API: http.NotFoundHandler(), ConnectOrigins: tt.origins})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/console/static/console.css", nil))
			csp := rec.Header().Get("Content-Security-Policy")
			if rec.Code != http.StatusOK || !strings.Contains(csp, tt.want) || !strings.Contains(csp, "default-src 'none'") {
				t.Fatalf("got %d with CSP %q, want 200 with %q", rec.Code, csp, tt.want)
			}
		})
	}
}
