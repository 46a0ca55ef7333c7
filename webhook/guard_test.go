package webhook

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	allowed, err := NewGuard([]string{"10.1.0.0/16", "192.168.7.7", "hooks.internal"})
	if err != nil {
		t.Fatalf("NewGuard: %v", err)
	}
	for _, tc := range []struct {
		name, url string
		guard     *Guard
		want      string // "" accepted, else a part of the refusal
	}{
		{"https", "https://hooks.example.com/done?x=1", nil, ""},
		{"http with port", "http://hooks.example.com:8080/done", nil, ""},
		{"public address", "https://93.184.216.34/hook", nil, ""},
		{"userinfo", "https://user:pw@hooks.example.com/", nil, "user name or password"},
		{"user only", "https://user@hooks.example.com/", nil, "user name or password"},
		{"ftp", "ftp://hooks.example.com/", nil, "http or https"},
		{"file", "file:///etc/passwd", nil, "http or https"},
		{"relative", "/hook", nil, "http or https"},
		{"no host", "http:///hook", nil, "with a host"},
		{"opaque", "http:hooks.example.com", nil, "with a host"},
		{"port 0", "http://hooks.example.com:0/", nil, "port"},
		{"port too big", "http://hooks.example.com:70000/", nil, "port"},
		{"loopback", "http://127.0.0.1:8080/", nil, "loopback"},
		{"loopback v6", "http://[::1]/", nil, "loopback"},
		{"v4-mapped loopback", "http://[::ffff:127.0.0.1]/", nil, "loopback"},
		{"private 10", "http://10.0.0.5/", nil, "private"},
		{"private 172", "http://172.16.3.4/", nil, "private"},
		{"private 192.168", "http://192.168.1.1/", nil, "private"},
		{"unique local v6", "http://[fd00::1]/", nil, "private"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", nil, "link-local"},
		{"link-local v6", "http://[fe80::1]/", nil, "link-local"},
		{"zone", "http://[fe80::1%25eth0]/", nil, "zone"},
		{"unspecified", "http://0.0.0.0/", nil, "unspecified"},
		{"this network", "http://0.1.2.3/", nil, "reserved"},
		{"cgnat", "http://100.64.1.1/", nil, "reserved"},
		{"nat64", "http://[64:ff9b::7f00:1]/", nil, "reserved"},
		{"localhost", "http://localhost:9000/", nil, "this machine"},
		{"localhost dot", "http://LOCALHOST./", nil, "this machine"},
		{"sub.localhost", "http://a.localhost/", nil, "this machine"},
		{"short address", "http://127.1/", nil, "valid host name"},
		{"decimal address", "http://2130706433/", nil, "valid host name"},
		{"hex address", "http://0x7f.0x1/", nil, "valid host name"},
		{"bad host", "http://exa mple.com/", nil, "http or https"},
		{"too long", "https://hooks.example.com/" + strings.Repeat("a", MaxURLLen), nil, "at most"},
		{"allowed prefix", "http://10.1.2.3/", allowed, ""},
		{"allowed address", "http://192.168.7.7/", allowed, ""},
		{"outside the allowed prefix", "http://10.2.0.1/", allowed, "private"},
		{"allowed host", "http://HOOKS.internal:8080/", allowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.guard
			if g == nil {
				g = &Guard{}
			}
			err := g.CheckURL(tc.url)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckURL(%q): got %v, want accepted", tc.url, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckURL(%q): got %v, want a refusal saying %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestNewGuardRefusesBadEntries(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"10.0.0.0/33", "not a host", "-x.example.com"} {
		if _, err := NewGuard([]string{bad}); err == nil {
			t.Fatalf("NewGuard(%q): got nil, want an error", bad)
		}
	}
}

// FuzzCheckURL holds CheckURL to its promise: what it accepts is an
// absolute http(s) URL without userinfo whose host, when an address, is not
// internal, and that http.NewRequest takes.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "http://127.0.0.1/", "http://[::ffff:10.0.0.1]:80/", "http://a@b/", "http://0x7f.1/", "https://xn--bcher-kva.example/", "http://1.1.1.1:65535/?q#f"} {
		f.Add(s)
	}
	g := &Guard{}
	f.Fuzz(func(t *testing.T, raw string) {
		if g.CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
			t.Fatalf("accepted %q: scheme %q, user %v, host %q", raw, u.Scheme, u.User, u.Hostname())
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && g.refusal(ip) != "" {
			t.Fatalf("accepted %q, an internal address: %s", raw, g.refusal(ip))
		}
		if _, err := http.NewRequest(http.MethodPost, raw, nil); err != nil {
			t.Fatalf("accepted %q, which http.NewRequest refuses: %v", raw, err)
		}
	})
}

// TestDialRefusesInternalAddresses: whatever a URL said at create time, the
// connection itself is refused to an internal address (DNS rebinding): a
// name that resolves to loopback ("localhost" here) is refused at dial,
// and allowed once the allow-list names its range.
func TestDialRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "http://localhost:" + port + "/"

	resp, err := NewClient(&Guard{}, 0).Post(target, "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("POST %s through the zero guard: got %d, want a refused dial", target, resp.StatusCode)
	}
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("POST %s: got %v, want ErrRefused naming loopback", target, err)
	}

	g, err := NewGuard([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatalf("NewGuard: %v", err)
	}
	resp, err = NewClient(g, 0).Post(target, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s with loopback allowed: %v", target, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("POST %s with loopback allowed: got %d, want 204", target, resp.StatusCode)
	}
}
