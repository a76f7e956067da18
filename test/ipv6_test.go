package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The lab's IPv6 addresses (docs/architecture.md, "The netns lab"): each
// host's last group mirrors its IPv4 last octet.
const (
	carrierHost6 = "2001:db8:1::10"
	sbcExt6      = "2001:db8:1::1"
	sbcInt6      = "2001:db8:2::1"
	pbxHost6     = "2001:db8:2::10"
)

// lab6Config is configs/lab6.yaml: both realms on IPv6.
func lab6Config() string { return filepath.Join(repoRoot, "configs", "lab6.yaml") }

// fixContentLength sets a message's Content-Length to its body's real
// length (test/testdata/rfc5118/README.md says why).
func fixContentLength(b []byte) []byte { return editHeaders(b, "") }

// editHeaders sets Content-Length to the body's real length and, when
// suffix is not empty, appends it to the Call-ID and puts it in each Via
// branch: the RFC's messages share one Call-ID, From tag and branch, and
// sent to one sbcd a later one would be an earlier one's retransmission or
// a merged request (RFC 3261 17.2.3, 8.2.2.2).
func editHeaders(b []byte, suffix string) []byte {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return b
	}
	lines := bytes.Split(head, []byte("\r\n"))
	for i, l := range lines {
		switch lower := bytes.ToLower(l); {
		case bytes.HasPrefix(lower, []byte("content-length:")):
			lines[i] = []byte(fmt.Sprintf("Content-Length: %d", len(body)))
		case suffix != "" && bytes.HasPrefix(lower, []byte("call-id:")):
			lines[i] = append(append([]byte(nil), l...), suffix...)
		case suffix != "" && bytes.HasPrefix(lower, []byte("via:")):
			// One branch for all of them too: a later one would match an
			// earlier one's server transaction and get its answer again.
			lines[i] = bytes.Replace(l, []byte(";branch=z9hG4bK"), []byte(";branch=z9hG4bK"+strings.TrimPrefix(suffix, "-")+"x"), 1)
		}
	}
	return append(append(bytes.Join(lines, []byte("\r\n")), "\r\n\r\n"...), body...)
}

// The RFC 5118 torture messages sent to sbcd's IPv6 carrier face from the
// IPv6 carrier host: valid ones are processed (an INVITE answered 100
// Trying and routed on to the IPv6 PBX address, anything else answered but
// never 400), invalid ones rejected or dropped, and sbcd survives them all
// and still completes calls over IPv6.
func TestRFC5118TortureMessages(t *testing.T) {
	needLab(t)
	dir := filepath.Join(repoRoot, "test", "testdata", "rfc5118")
	index, err := os.Open(filepath.Join(dir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer index.Close()
	s := startSBCD(t, lab6Config())
	c := nsSocket(t, "car", carrierHost6, 5098)
	t.Cleanup(func() { c.Close() })
	pbx := newInviteSink(t, nsSocket(t, "ent", pbxHost6, 5060))

	sc := bufio.NewScanner(index)
	sc.Scan() // header
	n := 0
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 4 {
			continue
		}
		file, section, verdict := f[0], f[1], f[3]
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		n++
		t.Run(section+"/"+file, func(t *testing.T) {
			fixed := fixContentLength(data)
			if !bytes.Equal(fixed, data) {
				data = editHeaders(data, fmt.Sprintf("-%d-printed", n))
				// As printed, the body is shorter or longer than its
				// Content-Length: never a 2xx, and sbcd lives.
				if got, _ := exchangeTryingTo(t, c, sbcExt6, data, 300*time.Millisecond); strings.HasPrefix(got, "SIP/2.0 2") {
					t.Errorf("as printed (wrong Content-Length): answered %q", got)
				}
			}
			routed := pbx.count()
			got, trying := exchangeTryingTo(t, c, sbcExt6, editHeaders(fixed, fmt.Sprintf("-%d", n)), 300*time.Millisecond)
			switch verdict {
			case "valid":
				if strings.HasPrefix(got, "SIP/2.0 400") || strings.HasPrefix(got, "SIP/2.0 505") {
					t.Errorf("valid message rejected: %q", got)
				}
				if bytes.HasPrefix(data, []byte("INVITE")) {
					if !trying {
						t.Errorf("valid INVITE got no 100 Trying (final answer %q)", got)
					}
					if !pbx.waitMore(routed, 2*time.Second) {
						t.Errorf("valid INVITE was not routed: no new INVITE reached the IPv6 PBX (final answer %q)", got)
					}
				} else if got == "" {
					t.Errorf("valid request got no answer")
				}
			case "invalid":
				if got != "" && !strings.HasPrefix(got, "SIP/2.0 4") && !strings.HasPrefix(got, "SIP/2.0 5") {
					t.Errorf("invalid message accepted: %q", got)
				}
			default:
				t.Fatalf("INDEX.tsv: verdict %q", verdict)
			}
			t.Logf("%-34s %-7s -> %q", file, verdict, got)
		})
		if !s.alive() {
			t.Fatalf("sbcd died on %s", file)
		}
	}
	if n != 12 {
		t.Fatalf("%d torture messages in INDEX.tsv, want the RFC's 12", n)
	}
	if t.Failed() { // what sbcd refused, and why
		t.Logf("policy: %s; malformed: %s", s.series(t, "sbc_policy_rejected_total"), s.series(t, "sbc_sip_malformed_total"))
	}
	s.waitIdle(t) // the routed INVITEs time out at the silent PBX
	pbx.close()
	pair6(t, true, "uas.xml", "uac.xml", 2)
}

// pair6 is pair over IPv6: a SIPp callee and caller on the lab's IPv6
// addresses, n calls, both must finish cleanly.
func pair6(t *testing.T, fromCarrier bool, uas, uac string, n int, extra ...string) {
	t.Helper()
	pairFamilies(t, fromCarrier, true, true, uas, uac, n, extra...)
}

// pairFamilies runs a SIPp callee and caller for n calls, the carrier
// side on IPv6 when car6, the enterprise side when ent6.
func pairFamilies(t *testing.T, fromCarrier, car6, ent6 bool, uas, uac string, n int, extra ...string) {
	t.Helper()
	car, sbcCar := sippSide{"car", carrierHost}, sbcExt
	if car6 {
		car, sbcCar = sippSide{"car", carrierHost6}, sbcExt6
	}
	ent, sbcEnt := sippSide{"ent", pbxHost}, sbcInt
	if ent6 {
		ent, sbcEnt = sippSide{"ent", pbxHost6}, sbcInt6
	}
	callee, caller, sbcAddr := ent, car, sbcCar
	if !fromCarrier {
		callee, caller, sbcAddr = car, ent, sbcEnt
	}
	m := fmt.Sprint(n)
	srv := startSIPp(t, callee.ns, uas, callee.args("-m", m)...)
	waitUDPListen(t, callee.ns, callee.ip, 5060)
	cl := startSIPp(t, caller.ns, uac, append(caller.args(net.JoinHostPort(sbcAddr, "5060"), "-m", m, "-r", "5", "-s", "1000"), extra...)...)
	limit := 30*time.Second + time.Duration(n/5)*time.Second
	cl.wait(t, limit)
	srv.wait(t, limit)
}

// sippSide is a SIPp peer's namespace and address.
type sippSide struct{ ns, ip string }

// args are SIPp's address arguments for this side (-i, -p), then rest.
func (p sippSide) args(rest ...string) []string {
	return append([]string{"-i", p.ip, "-p", "5060"}, rest...)
}

func TestFixContentLength(t *testing.T) {
	in := []byte("INVITE sip:a@b SIP/2.0\r\nContent-Type: application/sdp\r\nContent-Length: 268\r\n\r\nv=0\r\n")
	want := "INVITE sip:a@b SIP/2.0\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
	if got := string(fixContentLength(in)); got != want {
		t.Errorf("got %q", got)
	}
}
