package peers

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// Log keys of this component.
const (
	logComponent = "component"
	logTerminal  = "terminal"
	logPeer      = "peer"
	logOp        = "op"
	logCard      = "card" // a CardHash's Short form: keyed, never the card
	logPoints    = "points"
	logErr       = "err"
	logAddrs     = "addrs"
	logAttempt   = "attempt"
	logCount     = "count"
)

// serfLogger turns serf's and memberlist's "[LEVEL] component: message"
// lines into slog records at the matching level.
func serfLogger(l *slog.Logger) *log.Logger {
	return log.New(&slogWriter{l: l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lv := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[TRACE]", slog.LevelDebug - 4},
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	} {
		if bytes.HasPrefix(msg, []byte(lv.prefix)) {
			level = lv.level
			msg = bytes.TrimSpace(msg[len(lv.prefix):])
			break
		}
	}
	w.l.Log(context.Background(), level, string(msg))
	return len(p), nil
}
