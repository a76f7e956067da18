package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestCDRSurvivesKill9 runs the real sbcd with a JSON-lines CDR file,
// makes calls through it, waits until /metrics says they are written,
// kills sbcd with SIGKILL and reads the file: every record reported
// written is there, whole.
func TestCDRSurvivesKill9(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cdr", "cdr.jsonl")
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sipPorts := freePorts(t, "udp", 2)
	carrier := fmt.Sprintf("127.0.0.1:%d", sipPorts[0])
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q, media: {ports: 42000-42999}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 43000-43999}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
media: {datapath: userspace}
admin: {listen: %q}
cdr:
  node: kill9-node
  file: {path: %q, fsync: batch, fsync_interval: 100ms}
`, carrier, sipPorts[1], callee.Addr, admin, path)
	cfgPath := filepath.Join(dir, "sbcd.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &sbcd{t: t, admin: admin, out: &syncBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(sbcdBin, "-config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("sbcd output:\n%s", tailLines(p.out.String(), 60))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if code, _ := p.get("/healthz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sbcd admin API not up:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	const calls = 5
	const wait = 3 * time.Second
	for i := range calls {
		id := fmt.Sprintf("kill9-call-%d", i)
		caller.Invite(carrier, "1000", id, testphone.TestSDP)
		inv := callee.ExpectRequest(sip.INVITE, wait)
		if i == calls-1 { // the last one busy: unanswered calls have records too
			callee.Answer(inv, 486, "Busy Here", "cb", "")
			callee.ExpectRequest(sip.ACK, wait)
			caller.ExpectResponse(486, sip.INVITE, wait)
			continue
		}
		callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP)
		ok := caller.ExpectResponse(200, sip.INVITE, wait)
		dA := testphone.CallerDialog(ok, carrier)
		caller.Ack(dA, 1, id+"-ack")
		callee.ExpectRequest(sip.ACK, wait)
		caller.Request(dA, "BYE", 2, id+"-bye", "")
		caller.ExpectResponse(200, sip.BYE, wait)
		bye := callee.ExpectRequest(sip.BYE, wait)
		callee.Answer(bye, 200, "OK", "", "")
	}

	re := regexp.MustCompile(`(?m)^cdr_records_written_total\{sink="file"\} (\d+)`)
	var written int
	for deadline := time.Now().Add(5 * time.Second); written < calls; {
		_, m := p.get("/metrics")
		if s := re.FindStringSubmatch(m); s != nil {
			written, _ = strconv.Atoi(s[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("cdr_records_written_total{sink=file} = %d after 5s, want %d", written, calls)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-p.done

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []cdr.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r cdr.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("torn or bad line after kill -9: %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	if len(got) < written {
		t.Fatalf("%d records in the file after kill -9, %d were reported written", len(got), written)
	}
	for i, r := range got {
		want := fmt.Sprintf("kill9-call-%d", i)
		if r.A.CallID != want || r.Node != "kill9-node" {
			t.Errorf("record %d: leg A %q node %q, want %q", i, r.A.CallID, r.Node, want)
		}
		status := cdr.StatusAnswered
		if i == calls-1 {
			status = cdr.StatusBusy
		}
		if r.Status != status {
			t.Errorf("record %d: status %q, want %q", i, r.Status, status)
		}
		if status == cdr.StatusAnswered && (len(r.Media) != 1 || r.Media[0].Codec != "pcmu" || r.Media[0].Path != "userspace") {
			t.Errorf("record %d: media %+v, want one pcmu stream in user space", i, r.Media)
		}
	}
	if !strings.Contains(p.out.String(), "call detail records on") {
		t.Error("sbcd did not log its CDR sinks at start")
	}
}
