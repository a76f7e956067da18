package policy

import (
	"testing"
	"time"
)

func TestLocations(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewLocations(3)
	b := func(aor, contact string, exp time.Duration, cid string, cseq uint32) Binding {
		return Binding{AOR: aor, Contact: contact, Host: "198.51.100.10", Port: 5070, Expires: t0.Add(exp), CallID: cid, CSeq: cseq}
	}
	steps := []struct {
		name    string
		b       Binding
		wantErr error
		aor     string
		want    int // bindings of aor after the step
	}{
		{"add", b("pbx", "sip:pbx@198.51.100.10:5070", time.Hour, "c1", 1), nil, "pbx", 1},
		{"refresh", b("pbx", "sip:pbx@198.51.100.10:5070", 2*time.Hour, "c1", 2), nil, "pbx", 1},
		{"old CSeq ignored", b("pbx", "sip:pbx@198.51.100.10:5070", 0, "c1", 2), nil, "pbx", 1},
		{"second contact", b("pbx", "sip:pbx@198.51.100.11", time.Hour, "c2", 1), nil, "pbx", 2},
		{"other aor", b("200", "sip:200@198.51.100.12", time.Minute, "c3", 1), nil, "200", 1},
		{"full", b("300", "sip:300@198.51.100.13", time.Hour, "c4", 1), ErrLocationsFull, "300", 0},
		{"remove by expires 0", b("pbx", "sip:pbx@198.51.100.11", 0, "c2", 2), nil, "pbx", 1},
		{"room again", b("300", "sip:300@198.51.100.13", time.Hour, "c4", 1), nil, "300", 1},
	}
	for _, st := range steps {
		if err := l.Update(st.b, t0); err != st.wantErr {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		if n := len(l.Lookup(st.aor, t0)); n != st.want {
			t.Fatalf("%s: %d bindings of %s, want %d", st.name, n, st.aor, st.want)
		}
	}
	if got := l.Lookup("pbx", t0)[0].Expires; !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("refresh did not extend: %v", got)
	}
	// 200's binding expires after a minute; the full store makes room by expiring.
	if n := l.Expire(t0.Add(2 * time.Minute)); n != 2 {
		t.Errorf("%d left after expiry, want 2", n)
	}
	l.RemoveAll("pbx")
	if all := l.List(t0); len(all) != 1 || all[0].AOR != "300" {
		t.Errorf("list %+v", all)
	}
}

func TestLocationsHasSource(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLocations(10)
	for _, b := range []Binding{
		{AOR: "a", Contact: "sip:a@x", Source: "192.0.2.7:5060", Expires: now.Add(time.Minute)},
		{AOR: "b", Contact: "sip:b@x", Source: "[2001:db8::7]:5070", Expires: now.Add(time.Minute)},
		{AOR: "c", Contact: "sip:c@x", Source: "192.0.2.8:5060", Expires: now.Add(time.Second)},
	} {
		if err := l.Update(b, now); err != nil {
			t.Fatal(err)
		}
	}
	for ip, want := range map[string]bool{"192.0.2.7": true, "2001:db8::7": true, "192.0.2.70": false, "192.0.2.8": true} {
		if got := l.HasSource(ip, now); got != want {
			t.Errorf("HasSource(%s) = %v, want %v", ip, got, want)
		}
	}
	if l.HasSource("192.0.2.8", now.Add(2*time.Second)) {
		t.Error("an expired binding still makes its source known")
	}
}
