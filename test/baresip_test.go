package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// baresipDir writes a headless baresip config: a 440 Hz sine as the
// microphone, aubridge as the (null) speaker, sndfile dumping the decoded
// audio it receives to WAV, SRTP per the account's mediaenc.
func baresipDir(t *testing.T, mediaenc string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen %s:5070
audio_player aubridge,spk
audio_source ausine,440
ausrc_srate 48000
ausrc_channels 2
audio_alert aubridge,alert
snd_path %s
rtp_timeout 0
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aubridge.so
module sndfile.so
module srtp.so
module account.so
module menu.so
`, carrierHost, dir)
	acc := fmt.Sprintf("<sip:bs@%s:5070>;regint=0;mediaenc=%s;audio_codecs=PCMU\n", carrierHost, mediaenc)
	for name, body := range map[string]string{"config": cfg, "accounts": acc, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// baresip with SDES SRTP (mediaenc srtp-mand: RTP/SAVP, and srtp:
// best-effort a=crypto on RTP/AVP) in car calls a plain-RTP Go phone in
// ent through sbcd. The PBX gets plain PCMU that is baresip's sine; that
// audio never appears on the carrier wire; baresip decrypts what the PBX
// sends (its decoded dump is not silence).
func TestSRTPBaresipInterop(t *testing.T) {
	needLab(t)
	ci.Require(t, "baresip")
	for _, c := range []struct{ mediaenc, carrierSRTP, proto string }{
		{"srtp-mand", "required", "RTP/SAVP"},
		{"srtp", "optional", "RTP/AVP"},
	} {
		t.Run(c.mediaenc, func(t *testing.T) { baresipCall(t, c.mediaenc, c.carrierSRTP, c.proto) })
	}
}

func baresipCall(t *testing.T, mediaenc, carrierSRTP, proto string) {
	s := startSBCD(t, srtpConfig(t, carrierSRTP, "off"))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	pbx := nsSocket(t, "ent", pbxHost, 18000)
	t.Cleanup(func() { pbx.Close() })
	dir := baresipDir(t, mediaenc)

	// The PBX's media end: keeps every PCMU payload it receives.
	var mu sync.Mutex
	var heard [][]byte
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 2048)
		for {
			n, err := pbx.Read(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(buf[:n]) == nil && p.PayloadType == 0 && len(p.Payload) >= 40 {
				mu.Lock()
				heard = append(heard, bytes.Clone(p.Payload))
				mu.Unlock()
			}
		}
	}()
	defer func() { pbx.Close(); <-readDone }()

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	out := &bytes.Buffer{}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", "car", "baresip", "-f", dir, "-t", "8",
		"-e", fmt.Sprintf("/dial sip:1000@%s:5060", sbcExt))
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: ip netns exec may leave baresip as a child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	ext := startCaptureFilter(t, "car", "car0", "udp portrange 30000-30999") // the SBC's carrier media ports
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("baresip output:\n%s", tail(out.String(), 60))
		}
	}()

	inv := callee.ExpectRequest(sip.INVITE, 5*time.Second)
	// sdpMedia also proves no carrier address crosses: baresip's a=ssrc
	// cname names its host, which sbcd strips.
	md := sdpMedia(t, inv, sbcInt, "203.0.113.")
	if md.Proto != "RTP/AVP" || len(md.Crypto) != 0 || md.Addr.String() != sbcInt {
		t.Fatalf("INVITE to the PBX is not plain RTP/AVP on the SBC's address:\n%s", inv.Body())
	}
	callee.Answer(inv, 200, "OK", "bs", offerSDP(pbxHost, 18000, "sendrecv", 1))
	callee.ExpectRequest(sip.ACK, 3*time.Second)
	to := &net.UDPAddr{IP: md.Addr.AsSlice(), Port: md.Port}
	// The PBX talks for 3 s: PCMU, the test phone's payload pattern.
	for seq := uint16(1); seq <= 150; seq++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0xB5},
			Payload: testphone.Payload(0xB5, seq)}
		b, _ := p.Marshal()
		if _, err := pbx.WriteTo(b, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	got := heard
	mu.Unlock()
	if len(got) < 100 {
		t.Fatalf("the PBX received %d PCMU packets from baresip, want >= 100", len(got))
	}
	if err := notSilent(got); err != nil {
		t.Fatalf("baresip's audio at the PBX: %v", err)
	}
	if bye := callee.ExpectRequest(sip.BYE, 10*time.Second); bye != nil {
		callee.Answer(bye, 200, "OK", "", "")
	}
	<-done
	if !strings.Contains(string(inv.Body()), "RTP/AVP") {
		t.Fatalf("INVITE to the PBX is not RTP/AVP")
	}
	// Nothing of either side's audio crossed the carrier wire in the clear.
	pkts := ext.stop(t)
	if len(pkts) < 200 {
		t.Fatalf("only %d RTP datagrams captured on the carrier wire", len(pkts))
	}
	for _, p := range pkts {
		for _, h := range got {
			if bytes.Contains(p, h[:40]) {
				t.Fatal("baresip's audio, as the PBX got it, was on the carrier wire in the clear")
			}
		}
		for seq := uint16(1); seq <= 150; seq++ {
			if bytes.Contains(p, testphone.Payload(0xB5, seq)[:40]) {
				t.Fatal("the PBX's audio was on the carrier wire in the clear")
			}
		}
	}
	// baresip decrypted the PBX's audio: its dump of decoded audio is
	// there and not silent.
	if err := checkDump(dir); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "srtp: ") && strings.Contains(out.String(), "failed") {
		t.Fatalf("baresip reports SRTP failures")
	}
	s.waitIdle(t)
}

// notSilent: PCMU payloads that carry a signal (mu-law silence is 0xFF/0x7F).
func notSilent(pl [][]byte) error {
	loud := 0
	for _, p := range pl {
		for _, c := range p {
			if c&0x7f < 0x60 { // |sample| well above the noise floor
				loud++
			}
		}
	}
	if loud < len(pl)*20 {
		return fmt.Errorf("only %d loud samples in %d packets", loud, len(pl))
	}
	return nil
}

// checkDump finds sndfile's decode-side WAV and requires audio in it.
func checkDump(dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "dump-*-dec.wav"))
	if len(files) == 0 {
		all, _ := filepath.Glob(filepath.Join(dir, "*"))
		return fmt.Errorf("no decoded-audio dump from baresip (files: %v)", all)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	if len(b) < 44+8000 {
		return fmt.Errorf("%s: only %d bytes of decoded audio", files[0], len(b))
	}
	loud := 0
	for i := 44; i+1 < len(b); i += 2 {
		if v := int16(binary.LittleEndian.Uint16(b[i:])); v > 1000 || v < -1000 {
			loud++
		}
	}
	if loud < 4000 {
		return fmt.Errorf("%s: decoded audio is (nearly) silent: %d loud samples", files[0], loud)
	}
	return nil
}
