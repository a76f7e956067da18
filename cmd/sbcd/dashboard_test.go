package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestDashboardShowsLiveCalls loads the dashboard in headless Chromium
// (Debian's chromium) against the real sbcd with three calls up and RTP
// through them, and a fourth call shed by admission: the page's DOM shows
// every call the admin API lists, with both legs, state, media path and
// MOS, the admission key with its limit, the datapath's flows, a trunk,
// the HA role (state_dir: a one-voter Raft) and charts with points. The screenshot is kept in .ci/out/dashboard.png.
func TestDashboardShowsLiveCalls(t *testing.T) {
	ci.Require(t, "chromium")
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sipPorts := freePorts(t, "udp", 2)
	carrier := fmt.Sprintf("127.0.0.1:%d", sipPorts[0])
	p := runSBCD(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q, media: {ports: 45000-45099}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 45100-45199}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
media: {datapath: userspace}
trunks: [{name: pstn, realm: enterprise, targets: ["127.0.0.2:9"], options: {interval: 1s}}]
guard:
  realms: [{realm: carrier, admission: {max_calls: 3, retry_after: 3s}}]
admin: {listen: %q, history_interval: 1s}
state_dir: %q
`, carrier, sipPorts[1], callee.Addr, admin, t.TempDir()), admin, false)

	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var h api.HA
		if _, body := p.get("/api/v1/ha"); json.Unmarshal([]byte(body), &h) == nil && h.Role == "leader" {
			break // a standby drops SIP
		}
		if time.Now().After(deadline) {
			t.Fatal("the one-voter Raft did not lead within 5 s")
		}
	}
	const calls = 3
	ids := make([]string, calls)
	for i := range calls {
		ids[i] = fmt.Sprintf("dash-call-%d", i)
		liveCall(t, caller, callee, carrier, ids[i])
	}
	caller.Invite(carrier, "1000", "dash-shed", testphone.TestSDP)
	caller.ExpectResponse(503, sip.INVITE, 3*time.Second) // over max_calls: shed

	var listed []api.Call
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body := p.get("/api/v1/calls")
		if err := json.Unmarshal([]byte(body), &listed); err != nil {
			t.Fatalf("/api/v1/calls: %v\n%s", err, body)
		}
		withMOS := 0
		for _, c := range listed {
			if c.MOS > 0 {
				withMOS++
			}
		}
		if len(listed) == calls && withMOS == calls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API lists %d calls, want %d, all with MOS: %+v", len(listed), calls, listed)
		}
	}
	// The history (a point a second) counts the four calls offered and
	// the one shed, and has the calls' MOS.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var h api.History
		_, body := p.get("/api/v1/history")
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("/api/v1/history: %v\n%s", err, body)
		}
		offered, shed, mos := 0.0, 0.0, 0.0
		for _, pt := range h.Points {
			offered += pt.CPS * h.IntervalS
			shed += pt.ShedPS * h.IntervalS
			mos = max(mos, pt.MOS)
		}
		last := api.HistoryPoint{}
		if len(h.Points) > 0 {
			last = h.Points[len(h.Points)-1]
		}
		// Rates are over the time between ticks, which jitters: 10%.
		if last.Active == calls && math.Abs(offered-calls-1) < 0.4 && math.Abs(shed-1) < 0.1 && mos > 4 && last.MOSMin > 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: %.2f calls offered, %.2f shed, best MOS %.2f, last point %+v; want %d, 1, above 4, %d active",
				offered, shed, mos, last, calls+1, calls)
		}
	}
	var trunks []api.Trunk
	if _, body := p.get("/api/v1/trunks"); json.Unmarshal([]byte(body), &trunks) != nil || len(trunks) != 1 || len(trunks[0].Targets) != 1 {
		t.Fatalf("/api/v1/trunks: %s", body)
	}

	var flows api.Flows
	if _, body := p.get("/api/v1/flows"); json.Unmarshal([]byte(body), &flows) != nil || len(flows.Flows) == 0 {
		t.Fatalf("/api/v1/flows: %s", body)
	}

	dom := chromium(t, "http://"+admin+"/", "--dump-dom")
	for _, c := range listed {
		row := regexp.MustCompile(`<tr data-call-id="` + regexp.QuoteMeta(c.ID) + `">(.*?)</tr>`).FindStringSubmatch(dom)
		if row == nil {
			t.Errorf("call %s (leg A %s) is not on the page", c.ID, c.A.CallID)
			continue
		}
		cells := cellsOf(row[1])
		if c.B == nil {
			t.Fatalf("call %s has no leg B in the API", c.ID)
		}
		want := map[int]string{1: "confirmed", 3: "in", 4: "userspace", 5: strconv.FormatFloat(c.MOS, 'f', 2, 64),
			6: "carrier", 7: c.A.Peer, 8: c.A.CallID, 9: "enterprise", 10: c.B.Peer, 11: c.B.CallID}
		for i, w := range want {
			if i >= len(cells) || cells[i] != w {
				t.Errorf("call %s: cell %d is %q, want %q (row %q)", c.ID, i, at(cells, i), w, cells)
			}
		}
	}
	for _, id := range ids {
		if !strings.Contains(dom, ">"+id+"<") {
			t.Errorf("leg A Call-ID %s is not on the page", id)
		}
	}
	for _, want := range []string{
		`<span id="calls-count" class="count">(3)</span>`,
		`<span id="ha-role" class="pill leader">local: leader (term `, // state_dir: a one-voter Raft
		`<td>local (this node)</td>`,
		`<td>realm:carrier</td><td class="num">3</td><td class="num">3</td>`,
		`(datapath userspace)`,
		`<td>userspace</td><td class="num">` + strconv.Itoa(len(flows.Flows)) + "<", // rtp and rtcp, each side
		`updated `,
		`<td>pstn</td><td>enterprise</td>`,
		">" + trunks[0].Targets[0].Target + " ", // its state changes as the probes fail
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page has no %q", want)
		}
	}
	for _, id := range []string{"chart-cps", "chart-active", "chart-shed", "chart-mos"} {
		m := regexp.MustCompile(`<svg id="` + id + `"[^>]*data-points="(\d+)"`).FindStringSubmatch(dom)
		if m == nil || m[1] == "0" {
			t.Errorf("chart %s has no points: %v", id, m)
		}
	}
	if m := regexp.MustCompile(`<svg id="chart-shed".*?now ([0-9.]+)</text>`).FindStringSubmatch(dom); m == nil {
		t.Errorf("the shed chart has no label")
	}
	if t.Failed() {
		t.Logf("page:\n%s", dom)
	}
	// sbcctl reads the same API: the same calls, paths and MOS.
	table, code := p.sbcctl(buildSbcctl(t), "calls")
	for _, c := range listed {
		if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(c.ID)+`\s+confirmed\s+\S+\s+in\s+userspace\s+`+regexp.QuoteMeta(strconv.FormatFloat(c.MOS, 'f', 2, 64))).MatchString(table) {
			t.Errorf("sbcctl calls (exit %d) does not show call %s as the page does:\n%s", code, c.ID, table)
		}
	}

	out := filepath.Join("..", "..", ".ci", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(out, "dashboard.png"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(shot)
	chromium(t, "http://"+admin+"/", "--screenshot="+shot, "--window-size=1400,900")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s (%d bytes)", shot, st.Size())
	}
}

// chromium runs headless Chromium on url with args (--dump-dom prints the
// DOM once the page's scripts have run: virtual time lets its first poll
// finish) and returns its standard output.
func chromium(t *testing.T, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000"}
	cmd := exec.CommandContext(ctx, "chromium", append(append(base, args...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(b)
}

var cellRe = regexp.MustCompile(`<td[^>]*>(.*?)</td>`)

func cellsOf(row string) []string {
	var out []string
	for _, m := range cellRe.FindAllStringSubmatch(row, -1) {
		out = append(out, m[1])
	}
	return out
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// liveCall sets up a call from caller to callee through sbcd and sends
// 50 packets of 20 ms G.711 each way through its media, waiting for them
// to arrive: the call stays up, with a MOS.
func liveCall(t *testing.T, caller, callee *testphone.Phone, carrier, id string) {
	t.Helper()
	const wait = 3 * time.Second
	rtpA, rtpB := rtpEnd(t), rtpEnd(t)
	caller.Invite(carrier, "1000", id, sdpAt(rtpA.Addr()))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "cb-"+id, sdpAt(rtpB.Addr()))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(testphone.CallerDialog(ok, carrier), 1, id+"-ack")
	callee.ExpectRequest(sip.ACK, wait)
	toB, toA := sdpAddr(t, inv.Body()), sdpAddr(t, ok.Body())
	const n, ssrcA, ssrcB = 50, 0xa0, 0xb0
	errs := make(chan error, 2)
	go func() { errs <- rtpA.Send(toA, ssrcA, 1, n, 20*time.Millisecond) }()
	go func() { errs <- rtpB.Send(toB, ssrcB, 1, n, 20*time.Millisecond) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rtpB.WaitFor(ssrcA, n, wait)
	rtpA.WaitFor(ssrcB, n, wait)
}

func rtpEnd(t *testing.T) *testphone.RTPEnd {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return testphone.NewRTPEnd(t, c)
}

func sdpAt(a netip.AddrPort) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", a.Addr(), a.Addr(), a.Port())
}

var sdpC, sdpM = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`), regexp.MustCompile(`(?m)^m=audio (\d+)`)

// sdpAddr is where an SDP (sbcd's, rewritten) wants its audio.
func sdpAddr(t *testing.T, body []byte) netip.AddrPort {
	t.Helper()
	c, m := sdpC.FindSubmatch(body), sdpM.FindSubmatch(body)
	if c == nil || m == nil {
		t.Fatalf("no c= or m=audio in SDP:\n%s", body)
	}
	ap, err := netip.ParseAddrPort(string(c[1]) + ":" + string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
