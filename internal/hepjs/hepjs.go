// Package hepjs decodes HEP packets for tests with sipcapture's hep-js
// (npm), an implementation independent of package hep, so a test of what
// sbcd sends to a collector does not check the encoder against itself.
// tshark 4.0 has no HEP dissector. The JavaScript side (testdata/) is
// installed by scripts/deps.sh from its package-lock.
package hepjs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// Packet is what hep-js makes of one HEP packet (its field names).
type Packet struct {
	Rcinfo struct {
		ProtocolFamily int    `json:"protocolFamily"`
		Protocol       int    `json:"protocol"`
		SrcIP          string `json:"srcIp"`
		DstIP          string `json:"dstIp"`
		SrcPort        int    `json:"srcPort"`
		DstPort        int    `json:"dstPort"`
		TimeSeconds    int64  `json:"timeSeconds"`
		TimeUseconds   int64  `json:"timeUseconds"`
		PayloadType    int    `json:"payloadType"`
		CaptureID      uint32 `json:"captureId"`
		CapturePass    string `json:"capturePass"`
		CorrelationID  string `json:"correlation_id"`
	} `json:"rcinfo"`
	Payload string `json:"payload"`
}

// dir is testdata/ beside this file.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// Require skips t (fails it under CI) unless node and hep-js are there.
func Require(t testing.TB) {
	t.Helper()
	ci.Require(t, "node")
	if _, err := os.Stat(filepath.Join(dir(), "node_modules", "hep-js")); err != nil {
		ci.Skip(t, "hep-js is not installed in internal/hepjs/testdata: run scripts/deps.sh (make deps)")
	}
}

// Decode decodes each packet; an entry is nil where hep-js refused the
// packet.
func Decode(t testing.TB, pkts [][]byte) []*Packet {
	t.Helper()
	var in bytes.Buffer
	for _, p := range pkts {
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		in.Write(p)
	}
	f, err := os.CreateTemp("", "hepjs-*.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(in.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir(), "decode.js"), f.Name())
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hep-js decode: %v\n%s", err, stderr.Bytes())
	}
	var res []*Packet
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d *Packet
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("hep-js output %q: %v", sc.Bytes(), err)
		}
		res = append(res, d)
	}
	if len(res) != len(pkts) {
		t.Fatalf("hep-js decoded %d packets of %d", len(res), len(pkts))
	}
	return res
}
