package test

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// SIP-I through the lab (realms[].bodies): an INVITE whose body is
// multipart/mixed SDP + ISUP IAM, answered by a multipart 200 (SDP + ANM),
// carrier to PBX and PBX to carrier, with Go phones on raw packets. Each
// side gets the other's ISUP intact and an SDP naming only the SBC; both
// wires captured: nothing of the other network crosses.

// isupIAM is an ISUP IAM (ITU-T Q.763): binary, with NULs and a CRLF.
var isupIAM = []byte("\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\r\n\x03\x06\x0d\x03\x80\x90\xa2")

var isupANM = []byte("\x09\x01\x00")

func sipIBody(boundary, sdp string, isup []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/sdp\r\n\r\n%s\r\n", boundary, sdp)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/isup; version=itu-t92+\r\nContent-Disposition: signal; handling=required\r\n\r\n", boundary)
	b.Write(isup)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// sipIParts splits a received multipart message into its SDP and ISUP.
func sipIParts(t *testing.T, m sip.Message) (sdp string, isup []byte) {
	t.Helper()
	ct := m.GetHeaders("Content-Type")
	if len(ct) != 1 {
		t.Fatalf("Content-Type %v:\n%s", ct, m)
	}
	mt, params, err := mime.ParseMediaType(ct[0].Value())
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q, want multipart/mixed:\n%s", ct[0].Value(), m)
	}
	r := multipart.NewReader(bytes.NewReader(m.Body()), params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err != nil {
			break
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(p)
		switch pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt {
		case "application/sdp":
			sdp = b.String()
		case "application/isup":
			isup = b.Bytes()
		}
	}
	return sdp, isup
}

func sipIConfig(t *testing.T) string {
	t.Helper()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-30999}, bodies: {isup: pass}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999}, bodies: {isup: pass}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
media: {timeout: 30s}
`, sbcExt, sbcInt, pbxHost, carrierHost)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSIPIThroughSBC(t *testing.T) {
	needLab(t)
	s := startSBCD(t, sipIConfig(t))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")
	wait := 3 * time.Second
	for _, d := range []struct {
		name                           string
		callerNS, callerIP, calleeNS   string
		calleeIP, sbcIn, sbcOut, inNet string
	}{
		{"carrier to PBX", "car", carrierHost, "ent", pbxHost, sbcExt, sbcInt, "203.0.113."},
		{"PBX to carrier", "ent", pbxHost, "car", carrierHost, sbcInt, sbcExt, "198.51.100."},
	} {
		t.Run(d.name, func(t *testing.T) {
			caller := testphone.New(t, nsSocket(t, d.callerNS, d.callerIP, 5062))
			callee := testphone.New(t, nsSocket(t, d.calleeNS, d.calleeIP, 5060))
			id := "sipi-" + d.callerNS
			caller.InviteTyped(d.sbcIn+":5060", "+4930123", id, "", "multipart/mixed;boundary=caller-boundary",
				sipIBody("caller-boundary", offerSDP(d.callerIP, 16000, "sendrecv", 1), isupIAM))
			inv := callee.ExpectRequest(sip.INVITE, wait)
			sdp, isup := sipIParts(t, inv)
			if !bytes.Equal(isup, isupIAM) {
				t.Errorf("IAM at the callee %x, want %x", isup, isupIAM)
			}
			if !strings.Contains(sdp, "c=IN IP4 "+d.sbcOut+"\r\n") || strings.Contains(sdp, d.callerIP) {
				t.Errorf("SDP at the callee not anchored on %s:\n%s", d.sbcOut, sdp)
			}
			callee.AnswerTyped(inv, 200, "OK", "sipi-callee-"+d.calleeNS, "", `multipart/mixed; boundary="callee-b"`,
				sipIBody("callee-b", offerSDP(d.calleeIP, 18000, "sendrecv", 1), isupANM))
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			sdp, isup = sipIParts(t, ok)
			if !bytes.Equal(isup, isupANM) {
				t.Errorf("ANM at the caller %x, want %x", isup, isupANM)
			}
			if !strings.Contains(sdp, "c=IN IP4 "+d.sbcIn+"\r\n") || strings.Contains(sdp, d.calleeIP) {
				t.Errorf("SDP at the caller not anchored on %s:\n%s", d.sbcIn, sdp)
			}
			dA := testphone.CallerDialog(ok, d.sbcIn+":5060")
			caller.Ack(dA, 1, id+"-ack")
			callee.ExpectRequest(sip.ACK, wait)
			caller.Request(dA, "BYE", 2, id+"-bye", "")
			caller.ExpectResponse(200, sip.BYE, wait)
			bye := callee.ExpectRequest(sip.BYE, wait)
			callee.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
		})
	}
	car, ent := carWire.stop(t), entWire.stop(t)
	if n := len(sipMessages(car, "INVITE ")) + len(sipMessages(ent, "INVITE ")); n < 4 {
		t.Fatalf("%d INVITEs on the wires, want both calls on both", n)
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}
