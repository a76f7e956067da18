package sbc

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// admin adds the guard's admin endpoints:
//
//	GET    /api/v1/bans            banned sources
//	DELETE /api/v1/bans/{addr}     lift a ban
//	GET    /api/v1/registrations   registered contacts
//	GET    /api/v1/admission       admission keys, load and limits
func (g *guard) admin(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/bans", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, apiSlice(g.bans.List(g.now.Now()), apiBan))
	})
	mux.HandleFunc("DELETE /api/v1/bans/{addr}", func(w http.ResponseWriter, r *http.Request) {
		a, err := netip.ParseAddr(r.PathValue("addr"))
		if err != nil {
			http.Error(w, "not an IP address", http.StatusBadRequest)
			return
		}
		if !g.bans.Unban(a) {
			http.Error(w, "not banned", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/registrations", func(w http.ResponseWriter, _ *http.Request) {
		out := []api.Registration{}
		now := time.Now() // the registrar's clock
		for _, name := range g.order {
			if reg := g.realms[name].registrar; reg != nil {
				for _, b := range reg.loc.List(now) {
					out = append(out, apiRegistration(name, b))
				}
			}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/v1/admission", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, apiSlice(g.adm.State(), apiAdmission))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
