package sbc

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/mediarelay"
)

// An SRTP refusal from the media hook is a 488, even wrapped.
func TestMediaRefusalSRTP(t *testing.T) {
	_, err := mediarelay.ParseCrypto("1 F8_128_HMAC_SHA1_80 inline:AAAA")
	for _, e := range []error{err, fmt.Errorf("offer: %w", mediarelay.ErrSRTPRefused)} {
		if code, reason := mediaRefusal(e); code != sip.StatusNotAcceptableHere || reason == "" {
			t.Fatalf("mediaRefusal(%v) = %d %q, want 488", e, code, reason)
		}
	}
}
