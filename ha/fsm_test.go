package ha

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func applyData(t *testing.T, f *fsm, idx uint64, data []byte) any {
	t.Helper()
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
}

func putOp(k, v string) *op { return &op{key: k, val: []byte(v)} }
func delOp(k string) *op    { return &op{key: k, del: true} }

func TestFSMApplyPutDeleteBatch(t *testing.T) {
	f := newFSM()
	if r := applyData(t, f, 1, encodeBatch([]*op{putOp("a", "1")})); r != nil {
		t.Fatalf("put: %v", r)
	}
	if r := applyData(t, f, 2, encodeBatch([]*op{putOp("b", "2"), putOp("c", "3"), delOp("a"), putOp("b", "2b")})); r != nil {
		t.Fatalf("batch: %v", r)
	}
	want := map[string]string{"b": "2b", "c": "3"}
	if got := f.clone(); len(got) != len(want) {
		t.Fatalf("state %v, want %v", got, want)
	}
	for k, v := range want {
		if got, ok := f.get(k); !ok || string(got) != v {
			t.Errorf("%s = %q %v, want %q", k, got, ok, v)
		}
	}
	if r := applyData(t, f, 3, encodeBatch([]*op{delOp("nope")})); r != nil {
		t.Fatalf("delete of a missing key: %v", r)
	}
	// Non-command entries (configuration, no-op) do not reach the store.
	if r := f.Apply(&raft.Log{Index: 4, Type: raft.LogNoop}); r != nil || f.len() != 2 {
		t.Fatalf("noop changed state: %v", r)
	}
}

func TestFSMApplyIsolatesValues(t *testing.T) {
	f := newFSM()
	data := encodeBatch([]*op{putOp("k", "value")})
	applyData(t, f, 1, data)
	for i := range data {
		data[i] = 'X' // raft may reuse the entry's buffer
	}
	if v, _ := f.get("k"); string(v) != "value" {
		t.Fatalf("stored value aliases the log entry: %q", v)
	}
}

func TestFSMUnknownCommandPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"plain", []byte{0x21, 1, 'k'}},
		{"in batch", []byte{byte(cmdBatch), 2, byte(cmdPut), 1, 'k', 1, 'v', 0x21, 1, 'k'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "unknown command type 33") {
					t.Fatalf("want a loud failure on an unknown type, got %v", r)
				}
				if f.len() != 0 {
					t.Fatal("a batch with an unknown command was partly applied")
				}
			}()
			applyData(t, f, 7, tc.data)
		})
	}
}

func TestFSMIgnorableUnknownSkipped(t *testing.T) {
	f := newFSM()
	ign := byte(ignoreUnknownFlag | 0x05)
	if r := applyData(t, f, 1, []byte{ign, 1, 'k', 1, 'v'}); r != nil {
		t.Fatalf("ignorable: %v", r)
	}
	if r := applyData(t, f, 2, []byte{byte(cmdBatch), 2, ign, 1, 'x', 0, byte(cmdPut), 1, 'k', 1, 'v'}); r != nil {
		t.Fatalf("ignorable in batch: %v", r)
	}
	if f.len() != 1 || f.unknownIgnored != 2 {
		t.Fatalf("len %d ignored %d, want 1 and 2", f.len(), f.unknownIgnored)
	}
}

func TestFSMMalformedChangesNothing(t *testing.T) {
	cases := map[string][]byte{
		"empty":            {},
		"put no value":     {byte(cmdPut), 1, 'k'},
		"put long key":     {byte(cmdPut), 0xff, 0xff, 0x7f},
		"put empty key":    {byte(cmdPut), 0, 1, 'v'},
		"put trailing":     {byte(cmdPut), 1, 'k', 1, 'v', 9},
		"delete short":     {byte(cmdDelete), 5, 'k'},
		"batch count lies": {byte(cmdBatch), 3, byte(cmdPut), 1, 'k', 1, 'v'},
		"batch trailing":   {byte(cmdBatch), 1, byte(cmdPut), 1, 'k', 1, 'v', 1},
		"batch huge count": {byte(cmdBatch), 0xff, 0xff, 0xff, 0xff, 0x0f},
		"batch bad varint": {byte(cmdBatch), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"batch bad entry":  {byte(cmdBatch), 2, byte(cmdPut), 1, 'a', 1, 'v', byte(cmdPut), 9, 'b'},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFSM()
			applyData(t, f, 1, encodeBatch([]*op{putOp("keep", "1")}))
			r := applyData(t, f, 2, data)
			err, ok := r.(error)
			if !ok || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", r)
			}
			if got := f.clone(); len(got) != 1 || string(got["keep"]) != "1" {
				t.Fatalf("malformed entry changed state: %v", got)
			}
		})
	}
}

type memSink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestFSMSnapshotRoundTrip(t *testing.T) {
	src := newFSM()
	var ops []*op
	for i := 0; i < 1000; i++ {
		ops = append(ops, putOp(fmt.Sprintf("call/%04d", i), strings.Repeat("x", i%300)))
	}
	ops = append(ops, putOp("empty", ""))
	applyData(t, src, 1, encodeBatch(ops))
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after Snapshot() must not leak into it (Persist runs later,
	// concurrently with Apply).
	applyData(t, src, 2, encodeBatch([]*op{putOp("late", "1"), delOp("call/0001")}))
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v closed=%v", err, sink.closed)
	}
	raw := append([]byte(nil), sink.Bytes()...)

	dst := newFSM()
	applyData(t, dst, 1, encodeBatch([]*op{putOp("stale", "gone after restore")}))
	if err := dst.Restore(nopCloser{bytes.NewReader(raw)}); err != nil {
		t.Fatal(err)
	}
	got := dst.clone()
	if len(got) != 1001 {
		t.Fatalf("restored %d records, want 1001", len(got))
	}
	if _, ok := got["stale"]; ok {
		t.Fatal("Restore kept state that was not in the snapshot")
	}
	if _, ok := got["late"]; ok {
		t.Fatal("snapshot includes a write made after Snapshot()")
	}
	for _, o := range ops {
		if !bytes.Equal(got[o.key], o.val) {
			t.Fatalf("%s: %q, want %q", o.key, got[o.key], o.val)
		}
	}

	// Corruptions are refused and leave state alone.
	bad := map[string][]byte{
		"magic":     append([]byte("XXXXXX"), raw[6:]...),
		"version":   append(append([]byte(snapMagic), 9), raw[7:]...),
		"truncated": raw[:len(raw)/2],
		"checksum":  append(append([]byte(nil), raw[:len(raw)-1]...), raw[len(raw)-1]^0xff),
		"bitflip":   flip(raw, len(raw)/3),
		"empty":     nil,
	}
	for name, b := range bad {
		if err := dst.Restore(nopCloser{bytes.NewReader(b)}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: want ErrCorrupt, got %v", name, err)
		}
		if dst.len() != 1001 {
			t.Fatalf("%s: failed restore changed state", name)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}
