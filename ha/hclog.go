package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives raft an hclog.Logger whose lines go to slog: hclog
// writes JSON lines, slogWriter decodes each into a slog record.
func newHCLogger(l *slog.Logger) hclog.Logger {
	lvl := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		lvl = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name: "raft", Level: lvl, JSONFormat: true, Output: &slogWriter{l: l},
	})
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte{'\n'}) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.l.Info(string(line))
			continue
		}
		lvl := slog.LevelInfo
		switch m["@level"] {
		case "trace", "debug":
			lvl = slog.LevelDebug
		case "warn":
			lvl = slog.LevelWarn
		case "error":
			lvl = slog.LevelError
		}
		msg, _ := m["@message"].(string)
		attrs := make([]any, 0, 2*len(m))
		if mod, ok := m["@module"]; ok {
			attrs = append(attrs, "module", mod)
		}
		for k, v := range m {
			if len(k) > 0 && k[0] == '@' {
				continue
			}
			attrs = append(attrs, k, v)
		}
		w.l.Log(context.Background(), lvl, msg, attrs...)
	}
	return len(p), nil
}
