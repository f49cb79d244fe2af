package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
)

// statusWriter remembers the status and problem code of a response for the
// request log, and the status of an ack for the Observer.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
	ack    string
}

// outcome is the request's outcome for the Observer.
func (w *statusWriter) outcome() string {
	switch {
	case w.code != "":
		return w.code
	case w.ack != "":
		return w.ack
	}
	return "ok"
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests logs one line per request (never a body, a query value or a
// header value) and turns a panic into a 500 so the server keeps serving.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("handler panicked", logPath, r.URL.Path, logErr, fmt.Sprint(v))
				if sw.status == 0 {
					s.fail(sw, r, problem(CodeInternal, "the server failed to handle the request; it has been logged"))
				}
			}
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			took := s.Now().Sub(start)
			s.Logger.Log(r.Context(), level, "request",
				logMethod, r.Method, logPath, r.URL.Path, logStatus, sw.status, logCode, sw.code,
				logDuration, took.Round(time.Microsecond), logRemote, r.RemoteAddr)
			if s.Observer != nil {
				s.Observer.Request(r.Pattern, sw.status, sw.outcome(), took)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// fail writes err as a problem document; a server error is logged with
// its cause, which the client never sees (but a full storage or a
// database that does not answer, which the ledger logs at most once a
// minute, whatever the number of refusals). An internal error while the
// ledger's database does not answer (a read that found no connection) is
// that outage: a 503 the client retries after the Retry-After delay,
// logged here at most once a minute.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := asProblem(err)
	if p.Code == CodeInternal && s.ledgerDown(r.Context()) {
		p = asProblem(fmt.Errorf("%w: %w", cloud.ErrUnavailable, err))
		if n, log := s.downLog.Tick(); log {
			s.Logger.Error("the ledger's database does not answer: requests are answered 503 until it does", logPath, r.URL.Path, "failed", n, logErr, err)
		}
	} else if p.Status >= http.StatusInternalServerError && p.Code != CodeStorageFull && !errors.Is(err, cloud.ErrUnavailable) {
		s.Logger.Error("request failed", logPath, r.URL.Path, logErr, err)
	}
	answer(w, p)
}

// ledgerDown reports whether the ledger's database does not answer.
func (s *Server) ledgerDown(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := s.Ledger.Ping(ctx)
	return err != nil && !errors.Is(err, cloud.ErrStorageFull)
}

// answer writes p and records its code for the request's metrics.
func answer(w http.ResponseWriter, p *Problem) {
	if sw, ok := w.(*statusWriter); ok {
		sw.code = p.Code
	}
	writeProblem(w, p)
}

// readJSON decodes a capped JSON body into dst, rejecting unknown fields
// and trailing data.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return problem(CodeUnsupportedMedia, "send the body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.MaxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return problem(CodeInvalidRequest, "the body is not the expected JSON document: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return problem(CodeInvalidRequest, "the body has data after its JSON document")
	}
	return nil
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
