// Package webhook tells outside endpoints that a task ended: it checks the
// URLs they give (Guard), signs what it sends (Sign, TenantKey) and POSTs
// the deliveries the store wrote with each terminal status, retrying with
// backoff (Dispatcher).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Guard decides where a webhook may go: an http or https URL without
// userinfo whose host is not loopback, link-local, private, unspecified or
// otherwise internal, unless Allow lists it. It checks a URL when it is
// given (CheckURL) and each address it is about to connect to (DialContext),
// so a name that resolves to an internal address later (DNS rebinding)
// cannot reach it. The zero value refuses every internal target.
type Guard struct {
	prefixes []netip.Prefix
	hosts    map[string]bool
}

// NewGuard returns a Guard that also permits allow: CIDR prefixes
// ("10.1.0.0/16"), single addresses ("10.1.2.3") and host names
// ("hooks.internal", matched exactly, without case).
func NewGuard(allow []string) (*Guard, error) {
	g := &Guard{hosts: map[string]bool{}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.Contains(a, "/"):
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("webhook allow-list entry %q: want a CIDR prefix such as 10.0.0.0/8", a)
			}
			g.prefixes = append(g.prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(a); err == nil {
				g.prefixes = append(g.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if !validHostName(a) {
				return nil, fmt.Errorf("webhook allow-list entry %q: want a CIDR prefix, an address or a host name", a)
			}
			g.hosts[strings.ToLower(a)] = true
		}
	}
	return g, nil
}

// internal are the ranges beyond net/netip's predicates that reach no public
// endpoint: this network (0/8), carrier-grade NAT, IETF protocol
// assignments, benchmarking, reserved and broadcast, and the IPv6 prefixes
// that embed an IPv4 address (NAT64, 6to4).
var internal = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
}

// refusal says why ip may not be reached, or "" when it may.
func (g *Guard) refusal(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, p := range g.prefixes {
		if p.Contains(ip) {
			return ""
		}
	}
	switch {
	case ip.IsLoopback():
		return ip.String() + " is a loopback address"
	case ip.IsPrivate():
		return ip.String() + " is a private address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return ip.String() + " is a link-local address"
	case ip.IsUnspecified():
		return ip.String() + " is the unspecified address"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return ip.String() + " is a multicast address"
	}
	for _, p := range internal {
		if p.Contains(ip) {
			return ip.String() + " is in the reserved range " + p.String()
		}
	}
	return ""
}

// MaxURLLen bounds a webhook URL.
const MaxURLLen = 2048

// CheckURL reports why raw may not be a webhook URL, or nil. A host name is
// not resolved here (what it resolves to may change before the delivery):
// DialContext checks the addresses it connects to.
func (g *Guard) CheckURL(raw string) error {
	if len(raw) > MaxURLLen {
		return fmt.Errorf("must be at most %d bytes", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("must be an absolute http or https URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an absolute http or https URL")
	case u.User != nil:
		return errors.New("must not carry a user name or password")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return errors.New("must be an absolute http or https URL with a host")
	}
	if p := u.Port(); p != "" {
		if n, err := netip.ParseAddrPort("0.0.0.0:" + p); err != nil || n.Port() == 0 {
			return errors.New("must have a port from 1 to 65535")
		}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return errors.New("must not name an IPv6 zone")
		}
		if why := g.refusal(ip); why != "" {
			return errors.New("must not point to an internal address: " + why + " (see --webhook-allow)")
		}
		return nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if g.hosts[lower] {
		return nil
	}
	switch {
	case !validHostName(lower):
		return errors.New("must have a valid host name")
	case lower == "localhost" || strings.HasSuffix(lower, ".localhost"):
		return errors.New("must not point to an internal address: " + host + " is this machine (see --webhook-allow)")
	}
	return nil
}

// validHostName accepts DNS names whose last label is not numeric, so that
// forms some resolvers read as addresses ("127.1", "2130706433", "0x7f.1")
// are refused rather than judged as names.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	if strings.HasPrefix(last, "0x") {
		return false
	}
	return strings.Trim(last, "0123456789") != ""
}

// ErrRefused wraps the error of a connection the guard refused.
var ErrRefused = errors.New("webhook target refused")

// DialContext connects like net.Dialer but refuses, at the moment of each
// connection, an address the guard does not permit, unless the host name
// dialled is allowed by name.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	byName := g.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
	d := net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		if byName {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s is not an address", ErrRefused, address)
		}
		if why := g.refusal(ap.Addr()); why != "" {
			return fmt.Errorf("%w: %s", ErrRefused, why)
		}
		return nil
	}}
	return d.DialContext(ctx, network, addr)
}
