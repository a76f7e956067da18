package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// The page, its files and the history are served from the binary; every
// other path reaches the admin API behind it.
func TestHandler(t *testing.T) {
	h := NewHistory(time.Second, 10)
	now := time.Now()
	h.Sample(now, Counters{})
	h.Sample(now.Add(time.Second), Counters{Offered: 3, Active: 2})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api "+r.URL.Path) })
	srv := httptest.NewServer(Handler(h, next))
	defer srv.Close()
	get := func(path string) (int, string, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	for _, c := range []struct{ path, ctype, has string }{
		{"/", "text/html", `<script src="/dashboard/app.js"`},
		{"/dashboard/app.js", "javascript", "/api/v1/calls"},
		{"/dashboard/style.css", "text/css", "polyline"},
		{"/api/v1/calls", "", "api /api/v1/calls"},
		{"/metrics", "", "api /metrics"},
	} {
		code, ctype, body := get(c.path)
		if code != 200 || !strings.Contains(ctype, c.ctype) || !strings.Contains(body, c.has) {
			t.Errorf("GET %s: %d %q, body without %q:\n%.200s", c.path, code, ctype, c.has, body)
		}
	}
	if code, _, _ := get("/dashboard/nothing.js"); code != 404 {
		t.Errorf("GET /dashboard/nothing.js: %d, want 404", code)
	}
	code, ctype, body := get("/api/v1/history")
	var got api.History
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || ctype != "application/json" {
		t.Fatalf("GET /api/v1/history: %d %q %v\n%s", code, ctype, err, body)
	}
	if len(got.Points) != 1 || got.Points[0].CPS != 3 || got.Points[0].Active != 2 {
		t.Errorf("history %+v, want one point of 3 cps, 2 active", got)
	}
	for _, c := range []struct {
		path   string
		public bool
	}{{"/", true}, {"/dashboard/app.js", true}, {"/api/v1/calls", false}, {"/api/v1/history", false}, {"/metrics", false}, {"/dashboardx", false}} {
		if Public(c.path) != c.public {
			t.Errorf("Public(%q) = %t", c.path, !c.public)
		}
	}
}
