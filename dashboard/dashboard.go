// Package dashboard is sbcd's web dashboard: the page and its scripts,
// embedded in the binary (no CDN, no build step), and the ring of samples
// behind its charts. The page reads only the admin API, the same JSON
// sbcctl reads, so the two always agree. It imports only api: it talks to
// nothing but HTTP, and cmd/sbcd mounts it in front of the admin API.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the page at /, its files under /dashboard/ and
// /api/v1/history from h; every other request goes to next (the admin
// API).
func Handler(h *History, next http.Handler) http.Handler {
	files, _ := fs.Sub(static, "static") // the embedded directory is there
	assets := http.StripPrefix("/dashboard/", http.FileServerFS(files))
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", noSniff(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	})))
	mux.Handle("GET /dashboard/", noSniff(assets))
	mux.Handle("GET /api/v1/history", h)
	mux.Handle("/", next)
	return mux
}

// noSniff keeps browsers to the types the files are served as, the page
// out of other sites' frames and its scripts to its own files.
func noSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// Public reports the paths that hold no data (the page and its files):
// served without the admin token on any address, so a browser can load
// the page and then ask for the token.
func Public(path string) bool {
	return path == "/" || strings.HasPrefix(path, "/dashboard/")
}
