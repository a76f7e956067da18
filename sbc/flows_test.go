package sbc_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

// flowMedia is a media hook that reports flows.
type flowMedia struct{ sbc.PassThroughMedia }

func (flowMedia) Path() string { return "xdp" }
func (flowMedia) Flows() []mediarelay.FlowInfo {
	return []mediarelay.FlowInfo{{Local: "203.0.113.1:30000", Side: "a", Kind: "rtp", Path: "xdp", Packets: 7}}
}

// TestAdminFlows: /api/v1/flows shows the media hook's datapath and
// flows, and "none" with an empty list when media is not anchored.
func TestAdminFlows(t *testing.T) {
	// Each case passes its own media hook; the config's media section is
	// never read, and "off" is the case of no hook.
	cfg, err := config.Parse([]byte("realms:\n  - {name: a, listen: \"127.0.0.1:5999\"}\nmedia: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		media sbc.MediaHook
		want  string
		n     int
	}{{flowMedia{}, "xdp", 1}, {nil, "none", 0}} {
		s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Media: tc.media})
		if err != nil {
			t.Fatal(err)
		}
		// New starts the guard's sweep; Close stops it (goleak in TestMain).
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		rec := httptest.NewRecorder()
		s.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/flows", nil))
		var fi api.Flows
		if err := json.Unmarshal(rec.Body.Bytes(), &fi); err != nil || rec.Code != 200 {
			t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
		}
		if fi.Datapath != tc.want || len(fi.Flows) != tc.n || (tc.n == 1 && fi.Flows[0].Packets != 7) {
			t.Errorf("flows %+v, want datapath %s and %d flows", fi, tc.want, tc.n)
		}
	}
}
