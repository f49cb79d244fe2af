package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/loyalty"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document of the API.
func OpenAPI() []byte { return openAPI }

// MaxBody bounds a request body; a basket of the maximum 1,000 lines fits.
const MaxBody = 256 << 10

// Defaults of a Server.
const (
	DefaultHeartbeat = 15 * time.Second
)

// Server is the local API of one agent.
type Server struct {
	// Addr is the address to listen on; "127.0.0.1:0" picks a port.
	Addr string
	// Screen serves the cashier screen at /; nil serves none.
	Screen http.Handler
	// Heartbeat is how often an idle event stream gets a comment line.
	Heartbeat time.Duration
	Logger    *slog.Logger

	agent   *agent.Agent
	ln      net.Listener
	srv     *http.Server
	closing chan struct{}
	once    sync.Once
	serveWG sync.WaitGroup
}

// NewServer returns a server for a; Open starts it.
func NewServer(a *agent.Agent, addr string) *Server {
	return &Server{Addr: addr, Heartbeat: DefaultHeartbeat, agent: a, closing: make(chan struct{})}
}

// Open listens on Addr and serves in the background.
func (s *Server) Open() error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.Logger = s.Logger.With("component", "api")
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w (is another agent running? change listen in the config)", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)}
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("api stopped", "err", err)
		}
	}()
	return nil
}

// URL returns the server's base URL, e.g. http://127.0.0.1:7700.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close ends event streams, then shuts the server down gracefully within
// ctx. Safe to call twice.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		if s.srv != nil {
			err = s.srv.Shutdown(ctx)
			s.serveWG.Wait()
		}
	})
	return err
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/checkout", s.checkout)
	mux.HandleFunc("POST /v1/quote", s.quote)
	mux.HandleFunc("POST /v1/redeem", s.redeem)
	mux.HandleFunc("POST /v1/void", s.void)
	mux.HandleFunc("POST /v1/enroll", s.enroll)
	mux.HandleFunc("POST /v1/session", s.openSession)
	mux.HandleFunc("DELETE /v1/session", s.clearSession)
	mux.HandleFunc("GET /v1/session", s.getSession)
	mux.HandleFunc("GET /v1/members/{card}", s.member)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/receipts/{op}/preview.png", s.receiptPNG)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	mux.Handle("GET /metrics", s.agent.Metrics().Handler())
	if s.Screen != nil {
		mux.Handle("GET /", s.Screen)
	}
	return s.logged(mux)
}

// logged logs each request by its route pattern, never its path (which
// can hold a card number).
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		next.ServeHTTP(sw, r)
		pattern := r.Pattern
		if pattern == "" {
			pattern = r.Method + " (no route)"
		}
		s.Logger.Debug("request", "route", pattern, "status", sw.status, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// decode reads a JSON body strictly: size-capped, unknown fields rejected.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return invalid("The request body is larger than %d bytes.", MaxBody)
		}
		return invalid("The request body is not valid JSON for this endpoint: %v.", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("The request body has data after its JSON object.")
	}
	return nil
}

// readPost reads a POST's Idempotency-Key, then decodes its JSON body into v.
func readPost(w http.ResponseWriter, r *http.Request, v any) (key string, err error) {
	if key, err = idempotencyKey(r); err != nil {
		return "", err
	}
	return key, decode(w, r, v)
}

func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", invalid("The request has no Idempotency-Key header: the POS app must send one with every POST, so that a retry never counts twice.")
	}
	return k, nil
}

func parseCard(s string, required bool) (loyalty.CardToken, error) {
	if s == "" {
		if required {
			return loyalty.CardToken{}, agent.Errorf(agent.CodeNoCard, "No card: scan or tap the card, or send it as \"card\".")
		}
		return loyalty.CardToken{}, nil
	}
	c, err := loyalty.ParseCardToken(s)
	if err != nil {
		return c, invalid("This card cannot be read (%s); scan it again.", trimLoyalty(err))
	}
	return c, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeOp(w http.ResponseWriter, res *agent.Result) {
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, opReply(res))
}

func (s *Server) checkout(w http.ResponseWriter, r *http.Request) {
	var b CheckoutBody
	key, err := readPost(w, r, &b)
	var card loyalty.CardToken
	if err == nil {
		card, err = parseCard(b.Card, false)
	}
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	res, err := s.agent.Checkout(r.Context(), key, agent.CheckoutRequest{Card: card, Basket: b.Basket.domain(), Receipt: b.Receipt, Cashier: b.Cashier})
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeOp(w, res)
}

func (s *Server) quote(w http.ResponseWriter, r *http.Request) {
	var b QuoteBody
	_, err := readPost(w, r, &b)
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	q, err := s.agent.QuoteBasket(r.Context(), b.Basket.domain())
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, QuoteReply{Points: int64(q.Points), Reasons: reasons(q.Reasons), Total: q.Total.Amount})
}

func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	var b RedeemBody
	key, err := readPost(w, r, &b)
	var card loyalty.CardToken
	if err == nil {
		card, err = parseCard(b.Card, false)
	}
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	res, err := s.agent.Redeem(r.Context(), key, agent.RedeemRequest{Card: card, Reward: b.Reward, Receipt: b.Receipt, Cashier: b.Cashier})
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeOp(w, res)
}

func (s *Server) void(w http.ResponseWriter, r *http.Request) {
	var b VoidBody
	key, err := readPost(w, r, &b)
	var id loyalty.OpID
	if err == nil {
		if id, err = loyalty.ParseOpID(b.Op); err != nil {
			err = invalid("\"op\" must be the op ID from the checkout reply, like 0191c2a4-7b3e-7c00-8000-000000000000.")
		}
	}
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	res, err := s.agent.Void(r.Context(), key, agent.VoidRequest{Op: id, Reason: b.Reason, Receipt: b.Receipt, Cashier: b.Cashier})
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeOp(w, res)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var b EnrollBody
	key, err := readPost(w, r, &b)
	var card loyalty.CardToken
	if err == nil {
		card, err = parseCard(b.Card, false)
	}
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	res, err := s.agent.Enroll(r.Context(), key, agent.EnrollRequest{Card: card, Member: loyalty.MemberID(b.Member), Cashier: b.Cashier})
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeOp(w, res)
}

func (s *Server) openSession(w http.ResponseWriter, r *http.Request) {
	var b SessionBody
	_, err := readPost(w, r, &b)
	var card loyalty.CardToken
	if err == nil {
		card, err = parseCard(b.Card, true)
	}
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	v, err := s.agent.PresentCard(r.Context(), card, agent.SourceAPI)
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) clearSession(w http.ResponseWriter, _ *http.Request) {
	s.agent.ClearSession()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.agent.Session(r.Context()))
}

func (s *Server) member(w http.ResponseWriter, r *http.Request) {
	card, err := parseCard(r.PathValue("card"), true)
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	v, err := s.agent.Member(r.Context(), card)
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// receiptPNG serves one of the last receipts as a picture, for the screen.
func (s *Server) receiptPNG(w http.ResponseWriter, r *http.Request) {
	op, err := loyalty.ParseOpID(r.PathValue("op"))
	if err != nil {
		writeProblem(w, r, agent.Errorf(agent.CodeInvalid, "%q is not an op ID; use the op_id of a checkout reply.", r.PathValue("op")))
		return
	}
	png, err := s.agent.ReceiptPNG(op)
	if err != nil {
		writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Write(png)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.agent.Status())
}

// events streams the agent's events as server-sent events, starting with
// the whole state.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, r, agent.Errorf(agent.CodeInternal, "This server cannot stream events."))
		return
	}
	events, stop := s.agent.Subscribe()
	defer stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 1000\n\n")
	flusher.Flush()
	hb := s.Heartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	tick := time.NewTicker(hb)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-tick.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case e, ok := <-events:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, e.JSON()); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
