package sipguard

import "testing"

func TestDialog(t *testing.T) {
	for _, c := range []struct {
		msg     string
		method  string
		out, ok bool
	}{
		{"INVITE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:1@x>\r\n\r\n", "INVITE", true, true},
		{"INVITE sip:1@x SIP/2.0\r\nTo: <sip:1@x>;tag=ab\r\n\r\n", "INVITE", false, true},
		{"BYE sip:1@x SIP/2.0\r\nt: sip:1@x ; TAG = ab\r\n\r\n", "BYE", false, true},
		{"OPTIONS sip:x SIP/2.0\nto: \"a;tag=b\" <sip:x;tag=y>\n\n", "OPTIONS", true, true},
		{"MESSAGE sip:x SIP/2.0\r\nFrom: <sip:a>;tag=1\r\n\r\nTo: <sip:x>;tag=2\r\n", "MESSAGE", false, false},
		{"garbage", "", false, false},
		{"\r\n", "", false, false},
	} {
		m, out, ok := Dialog([]byte(c.msg))
		if string(m) != c.method || out != c.out || ok != c.ok {
			t.Errorf("%q: got %q %v %v, want %q %v %v", c.msg, m, out, ok, c.method, c.out, c.ok)
		}
	}
}

func FuzzDialog(f *testing.F) {
	f.Add([]byte("INVITE sip:1@x SIP/2.0\r\nTo: <sip:1@x>;tag=ab\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { Dialog(b) })
}
