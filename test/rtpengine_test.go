package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/mediarelay"
)

// rtpengine (Debian's rtpengine-daemon) as the media benchmark's
// reference: run in namespace sbc in user-space mode (--table=-1), one
// interface per realm, driven over its ng control protocol (bencoded
// dictionaries over UDP, each prefixed with a cookie).

// bencode encodes string, []byte, int, []any and map[string]any.
func bencode(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		fmt.Fprintf(buf, "%d:%s", len(x), x)
	case []byte:
		fmt.Fprintf(buf, "%d:", len(x))
		buf.Write(x)
	case int:
		fmt.Fprintf(buf, "i%de", x)
	case []string:
		buf.WriteByte('l')
		for _, e := range x {
			fmt.Fprintf(buf, "%d:%s", len(e), e)
		}
		buf.WriteByte('e')
	case []any:
		buf.WriteByte('l')
		for _, e := range x {
			if err := bencode(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // bencode dictionaries are sorted by key
		buf.WriteByte('d')
		for _, k := range keys {
			fmt.Fprintf(buf, "%d:%s", len(k), k)
			if err := bencode(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('e')
	default:
		return fmt.Errorf("bencode: cannot encode %T", v)
	}
	return nil
}

var errBdecode = errors.New("bdecode: malformed input")

// bdecode decodes one value: strings as string, integers as int64, lists
// as []any, dictionaries as map[string]any. Bounded: nesting depth 16, and
// every length is checked against what is left of the input.
func bdecode(b []byte) (any, error) {
	v, rest, err := bdecodeAt(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBdecode, len(rest))
	}
	return v, nil
}

func bdecodeAt(b []byte, depth int) (any, []byte, error) {
	if depth > 16 {
		return nil, nil, fmt.Errorf("%w: nested too deep", errBdecode)
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: truncated", errBdecode)
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 2 || end > 21 {
			return nil, nil, fmt.Errorf("%w: bad integer", errBdecode)
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad integer: %v", errBdecode, err)
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 1 || colon > 10 {
			return nil, nil, fmt.Errorf("%w: bad string length", errBdecode)
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, nil, fmt.Errorf("%w: string length %q", errBdecode, b[:colon])
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	case c == 'l':
		var out []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			v, rest, err := bdecodeAt(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated list", errBdecode)
		}
		return out, b[1:], nil
	case c == 'd':
		out := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdecodeAt(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: dictionary key is not a string", errBdecode)
			}
			v, rest, err := bdecodeAt(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out[ks], b = v, rest
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated dictionary", errBdecode)
		}
		return out, b[1:], nil
	default:
		return nil, nil, fmt.Errorf("%w: unexpected %q", errBdecode, c)
	}
}

// rtpengine is one rtpengine daemon in namespace sbc.
type rtpengine struct {
	cmd  *exec.Cmd
	done chan struct{}
	ng   *net.UDPConn // connected to its ng port, opened in namespace sbc
	logf string
}

const rtpengineNG = "127.0.0.1:2223"

// startRTPEngine runs rtpengine in the foreground in namespace sbc, user
// space only, the carrier realm as interface "ext" and the enterprise as
// "int", and waits until it answers ng pings.
func startRTPEngine(t *testing.T, portMin, portMax int) *rtpengine {
	t.Helper()
	r := &rtpengine{done: make(chan struct{}), logf: filepath.Join(t.TempDir(), "rtpengine.log")}
	lf, err := os.Create(r.logf)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	r.cmd = exec.Command("ip", "netns", "exec", "sbc", "rtpengine",
		"--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
		"--table=-1", // no kernel forwarding module: user space only
		"--interface=ext/"+sbcExt, "--interface=int/"+sbcInt,
		"--listen-ng="+rtpengineNG,
		fmt.Sprintf("--port-min=%d", portMin), fmt.Sprintf("--port-max=%d", portMax),
		"--timeout=600", "--silent-timeout=600", "--delete-delay=0")
	r.cmd.Stdout, r.cmd.Stderr = lf, lf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	err = inNetns("sbc", func() error {
		var err error
		r.ng, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(rtpengineNG)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if res, err := r.call(map[string]any{"command": "ping"}); err == nil && res["result"] == "pong" {
			return r
		}
		select {
		case <-r.done:
			b, _ := os.ReadFile(r.logf)
			t.Fatalf("rtpengine exited at start:\n%s", tail(string(b), 20))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.logf)
			t.Fatalf("rtpengine does not answer ng pings:\n%s", tail(string(b), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *rtpengine) pid() int { return r.cmd.Process.Pid }

func (r *rtpengine) stop(t *testing.T) {
	if r.ng != nil {
		r.ng.Close()
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	if b, _ := os.ReadFile(r.logf); len(b) > 0 {
		t.Logf("rtpengine log (tail):\n%s", tail(string(b), 15))
	}
}

// call sends one ng command and returns the reply dictionary; it retries
// twice on a 1 s timeout.
func (r *rtpengine) call(cmd map[string]any) (map[string]any, error) {
	var c [6]byte
	_, _ = rand.Read(c[:])
	cookie := hex.EncodeToString(c[:])
	var msg bytes.Buffer
	msg.WriteString(cookie + " ")
	if err := bencode(&msg, cmd); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for try := 0; try < 3; try++ {
		if _, err := r.ng.Write(msg.Bytes()); err != nil {
			return nil, fmt.Errorf("ng %v: %w", cmd["command"], err)
		}
		_ = r.ng.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := r.ng.Read(buf)
			if err != nil {
				break // timeout: send again
			}
			ck, body, ok := strings.Cut(string(buf[:n]), " ")
			if !ok || ck != cookie {
				continue // a late reply to an earlier try
			}
			v, err := bdecode([]byte(body))
			if err != nil {
				return nil, fmt.Errorf("ng %v reply: %w", cmd["command"], err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("ng %v reply is not a dictionary", cmd["command"])
			}
			if d["result"] == "error" {
				return nil, fmt.Errorf("ng %v: %v", cmd["command"], d["error-reason"])
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("ng %v: no reply from rtpengine", cmd["command"])
}

// sdpPort is the media address of the first m= line of the SDP in an ng
// reply.
func sdpPort(d map[string]any) (netip.AddrPort, error) {
	sdp, _ := d["sdp"].(string)
	s, err := mediarelay.ParseSDP([]byte(sdp))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("rtpengine's SDP: %w\n%s", err, sdp)
	}
	if len(s.Media) == 0 {
		return netip.AddrPort{}, fmt.Errorf("rtpengine's SDP has no media:\n%s", sdp)
	}
	return netip.AddrPortFrom(s.Media[0].Addr, uint16(s.Media[0].Port)), nil
}

// newCall creates call i: the carrier host offers from carPort, the
// enterprise host answers from entPort. It returns where the carrier
// must send (rtpengine's ext port) and where the enterprise must send
// (its int port).
func (r *rtpengine) newCall(i, carPort, entPort int) (carTo, entTo netip.AddrPort, err error) {
	id := fmt.Sprintf("bench-%d", i)
	off, err := r.call(map[string]any{
		"command": "offer", "call-id": id, "from-tag": "ft" + id,
		"sdp": offerSDP(carrierHost, carPort, "sendrecv", 1), "direction": []string{"ext", "int"},
		"ICE": "remove",
	})
	if err != nil {
		return carTo, entTo, err
	}
	if entTo, err = sdpPort(off); err != nil {
		return carTo, entTo, err
	}
	ans, err := r.call(map[string]any{
		"command": "answer", "call-id": id, "from-tag": "ft" + id, "to-tag": "tt" + id,
		"sdp": offerSDP(pbxHost, entPort, "sendrecv", 1), "ICE": "remove",
	})
	if err != nil {
		return carTo, entTo, err
	}
	carTo, err = sdpPort(ans)
	return carTo, entTo, err
}

func (r *rtpengine) deleteCall(i int) error {
	id := fmt.Sprintf("bench-%d", i)
	_, err := r.call(map[string]any{"command": "delete", "call-id": id, "from-tag": "ft" + id})
	return err
}

// Bencode round trip and hostile input (no lab needed).
func TestBencode(t *testing.T) {
	var b bytes.Buffer
	if err := bencode(&b, map[string]any{"command": "offer", "direction": []string{"ext", "int"}, "n": 42, "l": []any{"a", 1}}); err != nil {
		t.Fatal(err)
	}
	want := "d7:command5:offer9:directionl3:ext3:inte1:ll1:ai1ee1:ni42ee"
	if b.String() != want {
		t.Fatalf("encoded %q, want %q", b.String(), want)
	}
	v, err := bdecode(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	d := v.(map[string]any)
	if d["command"] != "offer" || d["n"] != int64(42) || len(d["direction"].([]any)) != 2 {
		t.Fatalf("decoded %#v", d)
	}
	for _, bad := range []string{"", "d", "l", "i12", "5:abc", "99999999999:x", "d1:ai1e", "di1ei2ee", "x", "1:ab",
		strings.Repeat("l", 40) + strings.Repeat("e", 40), "i-e", "d3:sdp5:v=0\r\ne1:x"} {
		if _, err := bdecode([]byte(bad)); err == nil {
			t.Errorf("bdecode(%q) accepted malformed input", bad)
		}
	}
}
