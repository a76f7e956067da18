package sbc

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// Calls lists the active calls, oldest first.
func (s *SBC) Calls() []api.Call {
	calls := s.calls.snapshot()
	out := make([]api.Call, 0, len(calls))
	for _, c := range calls {
		c.mu.Lock()
		ci := api.Call{
			ID: c.ID, State: c.state.String(), Route: c.route, Start: c.Start,
			A: api.Leg{Realm: c.a.realm.Name, CallID: c.a.d.CallID, Peer: c.a.peer},
		}
		if c.b != nil {
			ci.B = &api.Leg{Realm: c.b.realm.Name, CallID: c.b.d.CallID, Peer: c.b.peer}
		}
		c.mu.Unlock()
		if mi, ok := s.media.(mediaInfo); ok {
			if m, ok := mi.Media(ci.ID); ok {
				ci.MOS = m.MOS
				ci.Path = mediaPath(m)
			}
		}
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// mediaPath is a call's forwarding path for the calls list: "xdp",
// "userspace", or "tc+userspace" when its streams take different paths.
func mediaPath(m mediarelay.CallMedia) string {
	var paths []string
	for _, st := range m.Streams {
		if !slices.Contains(paths, st.Path) {
			paths = append(paths, st.Path)
		}
	}
	slices.Sort(paths)
	return strings.Join(paths, "+")
}

// AdminHandler serves /healthz, /metrics, /api/v1/calls and
// /api/v1/calls/{id}.
func (s *SBC) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/calls", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Calls())
	})
	mux.HandleFunc("GET /api/v1/flows", s.serveFlows)
	mux.HandleFunc("GET /api/v1/trunks", s.serveTrunks) // trunk.go
	// Profiles for the engineer on call: the admin API listens on a
	// management address only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /api/v1/calls/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		for _, ci := range s.Calls() {
			if ci.ID != id {
				continue
			}
			if mi, ok := s.media.(mediaInfo); ok {
				if m, ok := mi.Media(id); ok {
					am := apiCallMedia(m)
					ci.Media = &am
				}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(ci)
			return
		}
		http.Error(w, "no such call", http.StatusNotFound)
	})
	s.guard.admin(mux)
	return mux
}
