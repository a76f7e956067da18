package sbc

import "testing"

func TestCallIDOf(t *testing.T) {
	for in, want := range map[string]string{
		"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n\r\n":      "abc@h",
		"SIP/2.0 200 OK\r\ni:  compact \r\nCSeq: 1 INVITE\r\n\r\n":        "compact",
		"BYE sip:a SIP/2.0\ncall-id:lf-only\n\n":                          "lf-only",
		"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-the-body\r\n": "",
		"garbage":        "",
		"":               "",
		"X\r\nCall-ID:":  "",
		"X\r\n:\r\n\r\n": "",
	} {
		if got := callIDOf([]byte(in)); got != want {
			t.Errorf("callIDOf(%q) = %q, want %q", in, got, want)
		}
	}
}
