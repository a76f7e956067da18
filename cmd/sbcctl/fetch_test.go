package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/api"
)

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/calls":
			_, _ = w.Write([]byte(`[{"id":"c1","state":"confirmed","a":{"realm":"carrier"},"b":{"realm":"pbx","call_id":"x"}}]`))
		case "/bad":
			_, _ = w.Write([]byte(`{`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := srv.Client()
	list, raw, err := fetch[[]api.Call](c, srv.URL+"/api/v1/calls", "calls", false)
	if err != nil || raw || len(list) != 1 || list[0].ID != "c1" || list[0].B == nil || list[0].B.CallID != "x" {
		t.Fatalf("fetch calls: %+v raw %v err %v", list, raw, err)
	}
	if _, _, err := fetch[[]api.Call](c, srv.URL+"/bad", "calls", false); err == nil || !strings.Contains(err.Error(), "decode calls") {
		t.Fatalf("bad JSON: %v", err)
	}
	if _, _, err := fetch[api.HA](c, srv.URL+"/api/v1/ha", "ha status", false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
}
