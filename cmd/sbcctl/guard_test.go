package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// A registration on an IPv6 address shows its target with brackets, as
// a SIP URI or net.JoinHostPort writes it, not "2001:db8:2::10:5060".
func TestRegistrationsIPv6Target(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]api.Registration{{Realm: "enterprise", AOR: "sip:100@pbx", Host: "2001:db8:2::10", Port: 5060, Transport: "udp", Expires: time.Now().Add(time.Hour)}})
	}))
	defer srv.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	_, cerr := guardCommand(srv.Client(), srv.URL, "registrations", nil, false)
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if !strings.Contains(string(out), "[2001:db8:2::10]:5060;udp") {
		t.Errorf("output:\n%s", out)
	}
}
