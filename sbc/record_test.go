package sbc

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/topology"
)

func mustURI(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func sampleRecord(t testing.TB) *callRecord {
	ap := netip.MustParseAddrPort
	return &callRecord{
		ID: "c0ffee", Route: "carrier-to-pbx", State: StateConfirmed,
		Start: time.Unix(1700000000, 123), Answered: time.Unix(1700000002, 456),
		Legs: [2]legRecord{
			{Realm: "carrier", Transport: "UDP", CSeq: 0, RemoteCSeq: 3, Peer: "203.0.113.10:5060", Dialog: topology.Dialog{
				CallID: "abc@carrier", LocalURI: mustURI(t, "sip:1000@203.0.113.1"), LocalName: "", LocalTag: "lt1",
				RemoteURI: mustURI(t, "sip:alice@203.0.113.10"), RemoteName: "Alice", RemoteTag: "rt1",
				Target:   mustURI(t, "sip:alice@203.0.113.10:5062;transport=udp"),
				RouteSet: []sip.Uri{mustURI(t, "sip:edge1.carrier;lr"), mustURI(t, "sip:edge2.carrier;lr")},
			}},
			{Realm: "enterprise", Transport: "TCP", CSeq: 4711, RemoteCSeq: 2, Peer: "198.51.100.10:5060;transport=tcp", Dialog: topology.Dialog{
				CallID: "0123456789abcdef", LocalURI: mustURI(t, "sip:alice@198.51.100.1"), LocalTag: "lt2",
				RemoteURI: mustURI(t, "sip:1000@198.51.100.10"), RemoteTag: "rt2",
				Target: mustURI(t, "sip:callee@198.51.100.10:5060"),
			}},
		},
		Media: &mediarelay.CallState{
			Ref: mediarelay.CallRef{ID: "c0ffee", Realms: [2]string{"carrier", "enterprise"}},
			Legs: [2]mediarelay.LegMediaState{
				{Ports: []int{30000, 0}, SessID: "1234", Version: 3, Dir: []string{"sendrecv", "inactive"}},
				{Ports: []int{40002, 0}, SessID: "5678", Version: 2, Dir: []string{"sendonly"}},
			},
			Streams: []mediarelay.StreamState{
				{Present: true, ClockRate: 8000, Sides: [2]mediarelay.SideState{
					{RTP: ap("203.0.113.10:16000"), RTCP: ap("203.0.113.10:16001"), NAT: true, LatchRTP: ap("203.0.113.10:16000")},
					{RTP: ap("[2001:db8::1]:18000"), RTCP: ap("[2001:db8::1]:18000"), LatchRTP: ap("[2001:db8::1]:18000"), LatchRTCP: ap("[2001:db8::1]:18000")},
				}},
				{},
			},
			SRTP: []byte{1, 2, 3},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	want := sampleRecord(t)
	b := encodeRecord(want)
	if len(b) > 1024 {
		t.Errorf("record of a plain call takes %d bytes", len(b))
	}
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	// URIs compare by their text: the parser fills in fields (params maps)
	// the literal above leaves nil.
	norm := func(r *callRecord) string { return string(encodeRecord(r)) }
	if norm(got) != norm(want) {
		t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", got, want)
	}
	if !got.Start.Equal(want.Start) || !got.Answered.Equal(want.Answered) || got.Legs[1].CSeq != 4711 ||
		got.Legs[0].Dialog.RouteSet[1].Host != "edge2.carrier" || got.Legs[0].Dialog.Target.Port != 5062 {
		t.Fatalf("decoded %+v", got)
	}
	if !reflect.DeepEqual(got.Media, want.Media) {
		t.Fatalf("media:\n got %+v\nwant %+v", got.Media, want.Media)
	}
}

// A record from a newer writer: unknown fields are skipped, at every level.
func TestRecordSkipsUnknownFields(t *testing.T) {
	b := encodeRecord(sampleRecord(t))
	var e enc = append([]byte(nil), b...)
	e.bytes(200, []byte("future"))
	e.uint(201, 7)
	got, err := decodeRecord(e)
	if err != nil || got.ID != "c0ffee" {
		t.Fatalf("%v %+v", err, got)
	}
}

func TestRecordRejects(t *testing.T) {
	good := encodeRecord(sampleRecord(t))
	withField := func(tag int, v []byte) []byte {
		e := enc(append([]byte(nil), good...))
		e.bytes(tag, v)
		return e
	}
	leg := func(f func(e *enc)) []byte {
		var e enc
		f(&e)
		return withField(tLegA, e)
	}
	long := strings.Repeat("x", maxString+1)
	var manyRoutes enc
	for range maxRouteSet + 1 {
		manyRoutes.str(tlRoute, "sip:a.example;lr")
	}
	var manyStreams enc
	for range maxStreams + 1 {
		manyStreams.bytes(tmStream, nil)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"version 2":        append([]byte{2}, good[1:]...),
		"truncated":        good[:len(good)-3],
		"length past end":  append(append([]byte(nil), good...), 1, 0xff, 0xff, 0x03),
		"bad varint":       append(append([]byte(nil), good...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"too big":          append([]byte{1}, make([]byte, maxRecord)...),
		"no id":            withField(tCallID, nil),
		"long string":      withField(tRoute, []byte(long)),
		"state past end":   withField(tState, []byte{9}),
		"number with junk": withField(tStart, []byte{1, 2}),
		"bad URI":          leg(func(e *enc) { e.str(tlTarget, "not a uri") }),
		"bad transport":    leg(func(e *enc) { e.str(tlTransport, "SCTP") }),
		"CSeq too large":   leg(func(e *enc) { e.uint(tlCSeq, 1<<32) }),
		"too many routes":  withField(tLegA, manyRoutes),
		"too many streams": withField(tMedia, manyStreams),
		"bad address": withField(tMedia, func() []byte {
			var e enc
			e.nested(tmStream, func(e *enc) { e.nested(tsSideA, func(e *enc) { e.bytes(tssRTP, []byte{1, 2, 3}) }) })
			return e
		}()),
		"bad direction":  withField(tMedia, func() []byte { var e enc; e.nested(tmLegA, func(e *enc) { e.str(tmlDir, "sideways") }); return e }()),
		"port too large": withField(tMedia, func() []byte { var e enc; e.nested(tmLegA, func(e *enc) { e.uint(tmlPort, 70000) }); return e }()),
	}
	// A leg without tags (a field later in the record overrides an
	// earlier one, so an empty tag replaces the good one).
	cases["leg without tag"] = leg(func(e *enc) { e.str(tlLocalTag, ""); e.bytes(tlLocalTag, nil) })
	for name, b := range cases {
		if r, err := decodeRecord(b); err == nil || !errors.Is(err, errRecord) {
			t.Errorf("%s: decoded (%v), want an errRecord: %+v", name, err, r)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(sampleRecord(f)))
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same record.
		b2 := encodeRecord(r)
		r2, err := decodeRecord(b2)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !bytes.Equal(encodeRecord(r2), b2) {
			t.Fatal("record not stable through a round trip")
		}
	})
}
