package sbc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// An out-of-dialog INVITE whose handler is stuck before its first
// response (here: the call table's lock held, as a stuck handler would
// leave it) fails CheckHandlers once the bound has passed, naming the
// method; once the handler answers (100 Trying) the check passes again.
// An OPTIONS answered at once never counts.
func TestCheckHandlersStuckInvite(t *testing.T) {
	carrier := udpListen(t)
	pbx := udpListen(t)
	cp := carrier.LocalAddr().(*net.UDPAddr).Port
	_ = carrier.Close() // the SBC binds it; the phone uses its own socket
	ep := pbx.LocalAddr().(*net.UDPAddr).Port
	_ = pbx.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false} # the INVITEs carry no SDP: the test is about stuck handlers, not media
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:9;transport=udp"], target_timeout: 200ms}
`, cp, ep)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	phone := udpListen(t)
	sbcAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: cp}
	send := func(method, cid string) {
		me := phone.LocalAddr().String()
		msg := strings.ReplaceAll(fmt.Sprintf("%s sip:100@127.0.0.1:%d SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:c@%s>;tag=f1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: %s\r\n"+
			"CSeq: 1 %s\r\nContact: <sip:c@%s>\r\nContent-Length: 0\r\n\r\n",
			method, cp, me, cid, me, cid, method, me), "\r\n", "\r\n")
		if _, err := phone.WriteTo([]byte(msg), sbcAddr); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(status string) {
		t.Helper()
		buf := make([]byte, 4096)
		_ = phone.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, _, err := phone.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no %s: %v", status, err)
			}
			if strings.HasPrefix(string(buf[:n]), "SIP/2.0 "+status) {
				return
			}
		}
	}

	// The INVITE is held for less than sipgo's own 100 Trying (200 ms
	// after the request): a handler mutates the request, which that timer
	// reads unsynchronized (a race outside this test's subject).
	const bound = 80 * time.Millisecond
	send("OPTIONS", "opt-1")
	expect("200")
	if err := s.CheckHandlers(bound); err != nil {
		t.Fatalf("idle SBC: %v", err)
	}
	s.calls.mu.Lock()
	send("INVITE", "inv-1")
	deadline := time.Now().Add(2 * time.Second)
	for s.running() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the INVITE handler runs
	}
	err = s.CheckHandlers(bound)
	if err != nil {
		s.calls.mu.Unlock()
		t.Fatalf("within the bound: %v", err)
	}
	time.Sleep(bound + 20*time.Millisecond)
	err = s.CheckHandlers(bound)
	s.calls.mu.Unlock()
	if !errors.Is(err, ErrHandlerStalled) || !strings.Contains(err.Error(), "INVITE") {
		t.Fatalf("stuck INVITE handler: CheckHandlers = %v", err)
	}
	expect("100")
	for deadline := time.Now().Add(time.Second); s.CheckHandlers(bound) != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("1s after the lock was free: %v", s.CheckHandlers(bound))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *SBC) running() int {
	s.handlers.mu.Lock()
	defer s.handlers.mu.Unlock()
	return len(s.handlers.live)
}

func udpListen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
