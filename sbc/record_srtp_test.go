package sbc

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/mediarelay"
)

// The SRTP state travels in the record byte for byte, and neither the
// record nor its media state prints it in any form a log line, an error
// or a JSON dump would take.
func TestRecordSRTPNeverShown(t *testing.T) {
	secret := []byte("K3y+S4lt-that-must-never-leak!") // 30 bytes, like a key||salt
	rec := sampleRecord(t)
	rec.Media.SRTP = append(mediarelay.SRTPState{1, 1, 1, 1, 0}, secret...)
	b := encodeRecord(rec)
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Media.SRTP, rec.Media.SRTP) {
		t.Fatal("SRTP state changed in the record")
	}
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("record", "rec", got, "media", got.Media, "state", *got.Media, "srtp", got.Media.SRTP)
	}
	j, _ := json.Marshal(got)
	jm, _ := json.Marshal(got.Media)
	text := fmt.Sprintf("%v %+v %#v %v %+v %#v %s %x %q", got, got, got, *got.Media, *got.Media, *got.Media,
		got.Media.SRTP, got.Media.SRTP, got.Media.SRTP) + logs.String() + string(j) + string(jm)
	for _, form := range []string{
		string(secret[:12]), hex.EncodeToString(secret[:12]), base64.StdEncoding.EncodeToString(secret)[:16],
		strings.Trim(fmt.Sprint(secret[:8]), "[]"), strings.Trim(fmt.Sprint([]byte(rec.Media.SRTP[:8])), "[]"),
	} {
		if strings.Contains(text, form) {
			t.Fatalf("the record shows its SRTP state (%q):\n%s", form, text)
		}
	}
	if !strings.Contains(text, "not shown") {
		t.Fatalf("SRTP state not marked as hidden:\n%s", text)
	}
}
