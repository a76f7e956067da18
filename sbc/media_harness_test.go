package sbc_test

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// Media port ranges for the loopback SBCs: below the kernel's ephemeral
// range (32768+), where the test phones' and freePort's sockets live, and
// apart from the fixed ranges other packages' tests bind on loopback
// (mediarelay 31000-47119, sbcd 40000-41999, replicate_test 31100-31209).
const (
	mediaLo    = 10000
	mediaHi    = 19999
	mediaChunk = 64 // ports per realm: 32 RTP/RTCP pairs, more than any test has calls at once
)

var (
	mediaMu   sync.Mutex
	mediaNext = -1 // next chunk's first port; -1 until the first ask
)

// mediaPorts returns a "MIN-MAX" range of n ports (n even) on loopback that
// no other SBC of this process was given and that were all free when
// asked. The first chunk starts at a random place so that two test
// processes running at once (other worktrees) rarely meet; a chunk with a
// port already bound by anyone is skipped.
func mediaPorts(t *testing.T, n int) string {
	t.Helper()
	mediaMu.Lock()
	defer mediaMu.Unlock()
	span := (mediaHi - mediaLo + 1) / mediaChunk
	if mediaNext < 0 {
		mediaNext = mediaLo + rand.IntN(span)*mediaChunk
	}
	for range span {
		lo := mediaNext
		mediaNext += max(mediaChunk, n+n%2)
		if mediaNext+n > mediaHi {
			mediaNext = mediaLo
		}
		if lo+n-1 <= mediaHi && loopbackFree(lo, lo+n-1) {
			return fmt.Sprintf("%d-%d", lo, lo+n-1)
		}
	}
	t.Fatal("no free loopback media port range")
	return ""
}

// portRange is a media port range for an anchor built by a test itself.
type portRange struct{ lo, hi int }

func (r portRange) String() string { return fmt.Sprintf("%d-%d", r.lo, r.hi) }

// mediaRange is mediaPorts as numbers.
func mediaRange(t *testing.T, n int) portRange {
	t.Helper()
	var r portRange
	if _, err := fmt.Sscanf(mediaPorts(t, n), "%d-%d", &r.lo, &r.hi); err != nil {
		t.Fatal(err)
	}
	return r
}

// loopbackFree reports whether every UDP port in [lo, hi] binds on 127.0.0.1.
func loopbackFree(lo, hi int) bool {
	var held []*net.UDPConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for p := lo; p <= hi; p++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			return false
		}
		held = append(held, c)
	}
	return true
}

// newAnchor builds the media anchor sbcd would build for cfg (each realm's
// media address, port range, NAT latching and codec list, as
// cmd/sbcd's anchorConfig), on the user-space relay.
func newAnchor(t *testing.T, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) *mediarelay.Anchor {
	t.Helper()
	ac := mediarelay.AnchorConfig{Timeout: cfg.Media.Timeout.Std(), Logger: log, Registerer: reg}
	for _, r := range cfg.Realms {
		lo, hi, err := config.ParsePortRange(r.Media.Ports)
		if err != nil {
			t.Fatalf("realm %s media ports: %v", r.Name, err)
		}
		srtp, err := mediarelay.NewSRTPPolicy(r.Media.SRTP.Mode, r.Media.SRTP.Suites)
		if err != nil {
			t.Fatalf("realm %s media srtp: %v", r.Name, err)
		}
		ac.Realms = append(ac.Realms, mediarelay.RealmMedia{
			Name: r.Name, Addr: r.MediaAddr(), MinPort: lo, MaxPort: hi, NAT: r.Media.NAT, Codecs: r.Media.Codecs, SRTP: srtp,
		})
	}
	a, err := mediarelay.NewAnchor(ac)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// anchoredFor checks that body is an SDP the SBC anchored for realm: its
// c= is the realm's media address and every m= port is in the realm's
// media range (never the far phone's). what names the message.
func (s *testSBC) anchoredFor(t *testing.T, realm string, body []byte, what string) {
	t.Helper()
	var rc *config.Realm
	for i := range s.cfg.Realms {
		if s.cfg.Realms[i].Name == realm {
			rc = &s.cfg.Realms[i]
		}
	}
	if rc == nil {
		t.Fatalf("no realm %s", realm)
	}
	lo, hi, _ := config.ParsePortRange(rc.Media.Ports)
	addr := rc.MediaAddr().String()
	ms := 0
	for _, l := range strings.Split(string(body), "\r\n") {
		switch {
		case strings.HasPrefix(l, "c="):
			if l != "c=IN IP4 "+addr {
				t.Errorf("%s: %q, want the SBC's %s media address %s:\n%s", what, l, realm, addr, body)
			}
		case strings.HasPrefix(l, "m="):
			ms++
			f := strings.Fields(l)
			p, err := strconv.Atoi(f[min(1, len(f)-1)])
			if err != nil || p < lo || p > hi {
				t.Errorf("%s: %q, want a port of the SBC's %s range %d-%d:\n%s", what, l, realm, lo, hi, body)
			}
		}
	}
	if ms == 0 {
		t.Errorf("%s: no m= line:\n%s", what, body)
	}
}
