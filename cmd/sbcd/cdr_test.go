package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jackc/pgx/v5"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/internal/pgtest"
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
	p := runSBCD(t, y, admin, false)

	const calls = 5
	cdrCalls(t, caller, callee, carrier, "kill9-call", 0, calls)

	written := p.waitMetric("cdr_records_written_total", `sink="file"`, calls, 5*time.Second)
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

// cdrCalls makes calls from..to-1 through sbcd: each answered and hung up
// by the caller, except the last, which is busy.
func cdrCalls(t *testing.T, caller, callee *testphone.Phone, carrier, prefix string, from, to int) {
	t.Helper()
	const wait = 3 * time.Second
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		caller.Invite(carrier, "1000", id, testphone.TestSDP)
		inv := callee.ExpectRequest(sip.INVITE, wait)
		if i == to-1 { // unanswered calls have records too
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
}

// waitMetric waits until the counter name{labels} reaches n on /metrics
// and returns its value.
func (p *sbcd) waitMetric(name, labels string, n int, d time.Duration) int {
	p.t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\d+)`)
	v := 0
	for deadline := time.Now().Add(d); v < n; {
		_, m := p.get("/metrics")
		if s := re.FindStringSubmatch(m); s != nil {
			v, _ = strconv.Atoi(s[1])
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s{%s} = %d after %v, want %d", name, labels, v, d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return v
}

// TestCDRPostgresDownDuringCalls runs sbcd with the PostgreSQL sink on a
// real server, makes calls, stops the database, makes more calls, starts
// it again: every call's record is in the table once, in order.
func TestCDRPostgresDownDuringCalls(t *testing.T) {
	srv := pgtest.Start(t)
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sipPorts := freePorts(t, "udp", 2)
	carrier := fmt.Sprintf("127.0.0.1:%d", sipPorts[0])
	p := runSBCD(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q, media: {ports: 44000-44999}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 45000-45999}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
media: {datapath: userspace}
admin: {listen: %q}
cdr:
  postgres: {dsn: %q, batch_size: 5, batch_interval: 50ms, connect_timeout: 1s, spool_dir: %q}
`, carrier, sipPorts[1], callee.Addr, admin, srv.DSN, filepath.Join(t.TempDir(), "spool")), admin, false)

	cdrCalls(t, caller, callee, carrier, "pg", 0, 3)
	p.waitMetric("cdr_records_written_total", `sink="postgres"`, 3, 5*time.Second)
	srv.Stop()
	cdrCalls(t, caller, callee, carrier, "pg", 3, 7)
	p.waitMetric("cdr_records_spooled_total", `sink="postgres"`, 4, 5*time.Second)
	srv.Start()
	p.waitMetric("cdr_records_written_total", `sink="postgres"`, 7, 10*time.Second)

	db := srv.Conn(t)
	rows, err := db.Query(context.Background(), "SELECT a_call_id, status, node FROM cdr ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ ID, Status, Node string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("%d rows, want 7: %+v", len(got), got)
	}
	for i, r := range got {
		status := cdr.StatusAnswered
		if i == 2 || i == 6 {
			status = cdr.StatusBusy
		}
		if want := fmt.Sprintf("pg-%d", i); r.ID != want || r.Status != status || r.Node == "" {
			t.Errorf("row %d: %+v, want call %s %s", i, r, want, status)
		}
	}
	if _, m := p.get("/metrics"); strings.Contains(m, `cdr_records_dropped_total{`) {
		t.Errorf("records dropped:\n%s", grepLines(m, "cdr_records_dropped"))
	}
}
