package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// reloadYAML is a loopback config whose carrier calls go to target, with
// extra keys on the enterprise realm (header rules) and its media section
// (codecs).
func reloadYAML(carrier string, enterprise int, target, admin, entExtra string, mediaExtra ...string) string {
	r := mediaRanges()
	return fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q, media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s%s}%s}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
media: {datapath: userspace}
admin: {listen: %q, token: %q}
`, carrier, r[0], enterprise, r[1], strings.Join(mediaExtra, ""), entExtra, target, admin, testToken)
}

// mediaRanges are two 100-port media ranges on loopback, picked once per
// test process from those free now: other test processes on the machine
// (another worktree's sbcd) may hold any fixed range.
var mediaRanges = sync.OnceValue(func() [2]string {
	for range 100 {
		lo := 20000 + rand.IntN(100)*200
		if loopbackFree(lo, lo+199) {
			return [2]string{fmt.Sprintf("%d-%d", lo, lo+99), fmt.Sprintf("%d-%d", lo+100, lo+199)}
		}
	}
	panic("no free loopback media port range in 20000-39999")
})

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

// TestReloadNewCallsFollowAtOnce: with one call up toward PBX A, the file
// is changed to route to PBX B, add a header rule and a codec list, and
// SIGHUP sent. The next call reaches PBX B with the header and only PCMU
// offered; the call already up stays
// with A and its BYE carries no such header (it keeps the policy it
// started with). Then a file that moves a listen address and a file that
// does not parse are refused by `sbcctl reload` naming the key, and the
// config in service (hash, route) stays.
func TestReloadNewCallsFollowAtOnce(t *testing.T) {
	ctl := buildSbcctl(t)
	caller, pbxA, pbxB := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	ports := freePorts(t, "udp", 3)
	carrier := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := runSBCD(t, reloadYAML(carrier, ports[1], pbxA.Addr, admin, ""), admin, false)
	p.token = testToken
	_, before := p.get("/api/v1/config")
	// A reload is a write: without the admin token it is refused.
	if code, body := p.do(http.MethodPost, "/api/v1/config/reload", ""); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Fatalf("POST /api/v1/config/reload without the token: %d %s", code, body)
	}

	dA, dPBXA := loopCall(t, caller, pbxA, carrier, "reload-1", "ta")
	caller.Invite(carrier, "1000", "reload-0", twoCodecSDP) // before: both codecs pass
	inv0 := pbxA.ExpectRequest(sip.INVITE, 3*time.Second)
	if !strings.Contains(string(inv0.Body()), "PCMA") {
		t.Fatalf("without a codec list the offer lost PCMA:\n%s", inv0.Body())
	}
	pbxA.Answer(inv0, 486, "Busy Here", "t0", "")
	pbxA.ExpectRequest(sip.ACK, 3*time.Second)
	caller.ExpectResponse(486, sip.INVITE, 3*time.Second)

	rule := `, headers: {rules: [{action: add, header: X-Reloaded, value: "yes"}]}`
	write(t, p.cfg, reloadYAML(carrier, ports[1], pbxB.Addr, admin, rule, ", codecs: [PCMU]"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitMetric("sbc_config_reloads_total", `result="ok"`, 1, 3*time.Second)
	_, after := p.get("/api/v1/config")
	if after == before || !strings.Contains(after, `"reloads":1`) || !strings.Contains(after, `"last_result":"ok"`) {
		t.Fatalf("/api/v1/config after the reload:\n%s\nbefore:\n%s", after, before)
	}

	caller.Invite(carrier, "1000", "reload-2", twoCodecSDP)
	inv := pbxB.ExpectRequest(sip.INVITE, 3*time.Second)
	if h := inv.GetHeader("X-Reloaded"); h == nil || h.Value() != "yes" {
		t.Errorf("the new call's INVITE lacks the new header rule:\n%s", inv)
	}
	if body := string(inv.Body()); !strings.Contains(body, "RTP/AVP 0\r\n") || strings.Contains(body, "PCMA") {
		t.Errorf("the new call's offer ignores the reloaded codec list [PCMU]:\n%s", body)
	}
	pbxB.Answer(inv, 486, "Busy Here", "tb", "")
	pbxB.ExpectRequest(sip.ACK, 3*time.Second)
	caller.ExpectResponse(486, sip.INVITE, 3*time.Second)
	pbxA.Quiet(200*time.Millisecond, isInvite, "INVITE to the old route's PBX")

	// The call set up before the reload still works, under its old policy.
	caller.Request(dA, "BYE", 2, "reload-1-bye", "")
	bye := pbxA.ExpectRequest(sip.BYE, 3*time.Second)
	if bye.CallID().Value() != dPBXA.CallID {
		t.Fatalf("BYE in the wrong dialog: %s", bye.CallID().Value())
	}
	if bye.GetHeader("X-Reloaded") != nil {
		t.Errorf("the call set up before the reload got the new header rule:\n%s", bye)
	}
	pbxA.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, 3*time.Second)

	for _, c := range []struct{ name, yaml, key string }{
		{"listen moved", reloadYAML("127.0.0.1:1", ports[1], pbxA.Addr, admin, ""), "realms[carrier].listen"},
		{"unknown key", reloadYAML(carrier, ports[1], pbxA.Addr, admin, ", bogus: 1"), "bogus"},
	} {
		write(t, p.cfg, c.yaml)
		out, code := p.sbcctl(ctl, "reload")
		if code == 0 || !strings.Contains(out, c.key) || !strings.Contains(out, "refused") {
			t.Errorf("%s: sbcctl reload exit %d, want non-zero naming %s:\n%s", c.name, code, c.key, out)
		}
	}
	_, st := p.get("/api/v1/config")
	if !strings.Contains(st, `"reload_failures":2`) || !strings.Contains(st, `"last_result":"refused"`) || hashOf(st) != hashOf(after) {
		t.Errorf("/api/v1/config after two refusals:\n%s\nwant the hash of:\n%s", st, after)
	}
	p.waitMetric("sbc_config_reloads_total", `result="refused"`, 2, time.Second)
	caller.Invite(carrier, "1000", "reload-3", testphone.TestSDP) // still the reloaded route
	inv = pbxB.ExpectRequest(sip.INVITE, 3*time.Second)
	pbxB.Answer(inv, 486, "Busy Here", "tb3", "")
	pbxB.ExpectRequest(sip.ACK, 3*time.Second)
	caller.ExpectResponse(486, sip.INVITE, 3*time.Second)
	pbxA.Quiet(200*time.Millisecond, isInvite, "INVITE to PBX A after a refused reload")
	if out, code := p.sbcctl(ctl, "config"); code != 0 || !strings.Contains(out, "1 applied, 2 refused") {
		t.Errorf("sbcctl config: exit %d\n%s", code, out)
	}
}

// loopCall sets up one answered call from caller through sbcd to callee
// and returns both ends' dialogs.
func loopCall(t *testing.T, caller, callee *testphone.Phone, carrier, id, tag string) (testphone.Dialog, testphone.Dialog) {
	t.Helper()
	const wait = 3 * time.Second
	caller.Invite(carrier, "1000", id, twoCodecSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", tag, testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	d := testphone.CallerDialog(ok, carrier)
	caller.Ack(d, 1, id+"-ack")
	callee.ExpectRequest(sip.ACK, wait)
	return d, testphone.CalleeDialog(inv, tag)
}

// twoCodecSDP offers PCMU and PCMA, so a realm's codec list shows in the
// offer sbcd sends on.
const twoCodecSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"

func isInvite(m sip.Message) bool {
	r, ok := m.(*sip.Request)
	return ok && r.Method == sip.INVITE
}

func write(t *testing.T, path, y string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hashOf(status string) string {
	i := strings.Index(status, `"hash":"`)
	if i < 0 {
		return ""
	}
	return status[i : i+8+64]
}
