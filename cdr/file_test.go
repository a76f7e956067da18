package cdr_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/config"
)

func rec(i int) cdr.Record {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return cdr.Record{
		CallID: fmt.Sprintf("call-%04d", i), Start: start, Answer: start.Add(time.Second), End: start.Add(3 * time.Second),
		DurationMs: 2000, A: cdr.Leg{CallID: fmt.Sprintf("a-%d", i), Peer: "127.0.0.1:5060"},
		B:      &cdr.Leg{CallID: fmt.Sprintf("b-%d", i), Peer: "127.0.0.2:5060"},
		Caller: cdr.Number{Received: "0301234", Sent: "+49301234"}, Callee: cdr.Number{Received: "1000", Sent: "1000"},
		Route: "in", RealmIn: "carrier", RealmOut: "enterprise", Attempts: 1,
		Status: cdr.StatusAnswered, Result: "bye_a", EndedBy: cdr.EndedByCaller, SIPCode: 200, SIPReason: "OK",
		Media: []cdr.Stream{{Index: 0, Codec: "pcmu", Path: "userspace", MOS: 4.4, FromA: cdr.Dir{Packets: 100}, FromB: cdr.Dir{Packets: 99, Lost: 1, JitterMs: 2.5}}},
	}
}

// readLines reads every record of the JSON-lines files given, in order.
func readLines(t *testing.T, paths ...string) []cdr.Record {
	t.Helper()
	var out []cdr.Record
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r cdr.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: bad line %q: %v", p, sc.Text(), err)
			}
			out = append(out, r)
		}
		f.Close()
	}
	return out
}

func written(reg *prometheus.Registry, sink string) float64 {
	return gather(reg, "cdr_records_written_total", map[string]string{"sink": sink})
}

// gather sums the series of a metric family whose labels include want.
func gather(reg *prometheus.Registry, name string, want map[string]string) float64 {
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFileSinkPolicies(t *testing.T) {
	for _, policy := range []string{"batch", "always", "never"} {
		t.Run(policy, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cdr", "cdr.jsonl")
			reg := prometheus.NewRegistry()
			w, err := cdr.Open(config.CDR{Queue: 100, Node: "n1", File: &config.CDRFile{
				Path: path, Fsync: policy, FsyncInterval: config.Duration(20 * time.Millisecond),
			}}, cdr.Options{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				w.Record(rec(i))
			}
			// Counted written means on disk: read it before Close.
			waitFor(t, "50 records written", 2*time.Second, func() bool { return written(reg, "file") == 50 })
			got := readLines(t, path)
			if len(got) != 50 {
				t.Fatalf("%d lines in the file, want 50", len(got))
			}
			ids := map[string]bool{}
			for i, r := range got {
				if r.CallID != rec(i).CallID || r.Node != "n1" || len(r.ID) != 32 || ids[r.ID] {
					t.Fatalf("line %d: %+v", i, r)
				}
				ids[r.ID] = true
			}
			if err := w.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The record's JSON: times in UTC to the millisecond, no answer when
// unanswered, SRTP suites but no key material anywhere.
func TestRecordJSON(t *testing.T) {
	r := rec(1)
	r.Answer = time.Time{}
	r.Start = cdr.MS(time.Date(2026, 12, 1, 11, 0, 0, 123456789, time.FixedZone("x", 3600)))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"start":"2026-12-01T10:00:00.123Z"`, `"status":"answered"`, `"codec":"pcmu"`, `"path":"userspace"`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s: %s", want, s)
		}
	}
	if strings.Contains(s, `"answer"`) {
		t.Errorf("unanswered record has an answer time: %s", s)
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cdr.jsonl")
	reg := prometheus.NewRegistry()
	w, err := cdr.Open(config.CDR{Queue: 1000, File: &config.CDRFile{
		Path: path, Fsync: "always", FsyncInterval: config.Duration(time.Second), RotateSize: 8192, Keep: 3,
	}}, cdr.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		w.Record(rec(i))
	}
	waitFor(t, "60 written", 2*time.Second, func() bool { return written(reg, "file") == 60 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := cdr.Rotated(path)
	if len(old) != 3 {
		t.Fatalf("rotated files %v, want keep=3 of them", old)
	}
	for _, p := range append(old, path) {
		if st, _ := os.Stat(p); st.Size() > 8192 {
			t.Errorf("%s is %d bytes, over rotate_size", p, st.Size())
		}
	}
	// The newest records survive, in order, across the kept files.
	got := readLines(t, append(old, path)...)
	if len(got) == 0 || got[len(got)-1].CallID != rec(59).CallID {
		t.Fatalf("last record %+v", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].CallID <= got[i-1].CallID {
			t.Fatalf("out of order at %d: %s after %s", i, got[i].CallID, got[i-1].CallID)
		}
	}

	// By age: a rotate_interval of 1s rotates a file older than that.
	path2 := filepath.Join(dir, "age.jsonl")
	w, err = cdr.Open(config.CDR{Queue: 10, File: &config.CDRFile{
		Path: path2, Fsync: "batch", FsyncInterval: config.Duration(50 * time.Millisecond), RotateInterval: config.Duration(time.Second),
	}}, cdr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Record(rec(1))
	waitFor(t, "rotation by age", 3*time.Second, func() bool { return len(cdr.Rotated(path2)) == 1 })
	w.Record(rec(2))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, b := readLines(t, cdr.Rotated(path2)...), readLines(t, path2); len(a) != 1 || len(b) != 1 {
		t.Fatalf("rotated %d, current %d records; want 1 and 1", len(a), len(b))
	}
}

// A full queue drops and counts, and Record never blocks.
func TestQueueFullDropsAndCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdr.jsonl")
	reg := prometheus.NewRegistry()
	w, err := cdr.Open(config.CDR{Queue: 1, File: &config.CDRFile{
		Path: path, Fsync: "always", FsyncInterval: config.Duration(time.Second),
	}}, cdr.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 5000 {
		w.Record(rec(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("5000 Record calls took %v: Record blocks", d)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	dropped := gather(reg, "cdr_records_dropped_total", map[string]string{"reason": "queue_full"})
	n := float64(len(readLines(t, path)))
	if dropped == 0 || n+dropped != 5000 || written(reg, "file") != n {
		t.Fatalf("in file %v, dropped %v, written %v: want file+dropped = 5000, some dropped", n, dropped, written(reg, "file"))
	}
}
