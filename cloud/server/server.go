package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/internal/logevery"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// Defaults for a Server's limits.
const (
	DefaultAddr              = ":8443"
	DefaultMaxBatchBytes     = batch.MaxBatchBytes
	DefaultMaxJSONBytes      = 64 << 10
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultEnrollCodeTTL     = 24 * time.Hour
	DefaultShutdownTimeout   = 10 * time.Second
	// DefaultMaxConcurrentApply bounds the batches applied at once; more
	// wait up to DefaultApplyQueueWait, then get a 503 with Retry-After.
	DefaultMaxConcurrentApply = 8
	DefaultApplyQueueWait     = 5 * time.Second
)

// Server serves the cloud's HTTP API. Set the exported fields after New and
// before Open; Open validates them.
type Server struct {
	// Addr is the address to listen on, e.g. ":8443" or "127.0.0.1:0".
	Addr string
	// TLSCertFile and TLSKeyFile, when both set, serve HTTPS. When either
	// file changes (a renewed certificate), the pair is loaded again
	// within a minute, without a restart.
	TLSCertFile string
	TLSKeyFile  string
	// certCheckEvery overrides certReloadCheck, for tests.
	certCheckEvery time.Duration

	// Ledger is the cloud ledger the server fronts.
	Ledger Ledger
	// Key is the cloud's signing key: acks, snapshots and rules carry its signature.
	Key ed25519.PrivateKey
	// Program is the loyalty program's ID, bound into every signature.
	Program string
	// AdminToken protects /v1/admin; empty disables the admin API.
	AdminToken []byte
	// CardKey is the program's card hash key, handed to every terminal at
	// enrollment and in its roster, sealed to it; empty hands out none.
	CardKey []byte
	// GossipKeyGrace is how long a retired gossip key stays in the
	// keyring the tills get.
	GossipKeyGrace time.Duration

	MaxBatchBytes     int64
	MaxJSONBytes      int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	EnrollCodeTTL     time.Duration
	// MaxConcurrentApply batches are applied at once; a batch that waits
	// longer than ApplyQueueWait for its turn is answered 503 with
	// Retry-After, so a storm of reconnecting terminals backs off instead
	// of piling up on the database's locks.
	MaxConcurrentApply int
	ApplyQueueWait     time.Duration
	// RequestClockSkew bounds how far a signed GET's timestamp may be from Now.
	RequestClockSkew time.Duration

	// Metrics, when set, is served at GET /metrics to callers that send
	// the admin token (Prometheus sends it with its authorization
	// setting), for the operator's monitoring.
	Metrics http.Handler
	// Observer, when set, hears of every request and of the ops of every
	// batch applied.
	Observer Observer

	Logger *slog.Logger
	// Now is the clock; tests inject one.
	Now func() time.Time

	signer     *batch.Signer
	applySlots chan struct{}
	hlc        loyalty.HLClock

	stampMu   sync.Mutex
	lastStamp time.Time

	// downLog spaces fail's lines about a ledger database that does not
	// answer.
	downLog logevery.Limiter

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	serveErr chan error
	closed   bool
	certs    *certFiles // nil without TLS
}

// New returns a Server for ledger, signing with key for program, with
// every limit at its default.
func New(ledger Ledger, key ed25519.PrivateKey, program string) *Server {
	return &Server{
		Addr:               DefaultAddr,
		Ledger:             ledger,
		Key:                key,
		Program:            program,
		MaxBatchBytes:      DefaultMaxBatchBytes,
		MaxJSONBytes:       DefaultMaxJSONBytes,
		ReadHeaderTimeout:  DefaultReadHeaderTimeout,
		ReadTimeout:        DefaultReadTimeout,
		WriteTimeout:       DefaultWriteTimeout,
		IdleTimeout:        DefaultIdleTimeout,
		EnrollCodeTTL:      DefaultEnrollCodeTTL,
		GossipKeyGrace:     DefaultGossipKeyGrace,
		RequestClockSkew:   5 * time.Minute,
		MaxConcurrentApply: DefaultMaxConcurrentApply,
		ApplyQueueWait:     DefaultApplyQueueWait,
		Logger:             slog.New(slog.DiscardHandler),
		Now:                time.Now,
	}
}

// validate checks the settings Open relies on.
func (s *Server) validate() error {
	switch {
	case s.Ledger == nil:
		return errors.New("server: no ledger configured")
	case len(s.Key) != ed25519.PrivateKeySize:
		return errors.New("server: no Ed25519 signing key; load one with LoadOrCreateKey")
	case s.Program == "":
		return errors.New("server: no program ID; pass --program")
	case (s.TLSCertFile == "") != (s.TLSKeyFile == ""):
		return errors.New("server: TLS needs both a certificate and a key file (--tls-cert and --tls-key)")
	case s.MaxConcurrentApply <= 0 || s.ApplyQueueWait < 0:
		return errors.New("server: MaxConcurrentApply must be at least 1 and ApplyQueueWait not negative")
	case s.MaxBatchBytes <= 0 || s.MaxBatchBytes > batch.MaxBatchBytes || s.MaxJSONBytes <= 0:
		return fmt.Errorf("server: body limits must be positive, and a batch at most %d bytes", batch.MaxBatchBytes)
	case len(s.CardKey) > 0 && (len(s.CardKey) < 16 || len(s.CardKey) > 64):
		return errors.New("server: the card key must be 16 to 64 bytes")
	case len(s.AdminToken) > 0 && len(s.AdminToken) < 16:
		return errors.New("server: the admin token is shorter than 16 bytes; generate one with 'openssl rand -hex 32'")
	}
	return nil
}

// Open validates the settings, listens on Addr and serves in the
// background until Close.
func (s *Server) Open() error {
	if err := s.validate(); err != nil {
		return err
	}
	signer, err := batch.NewSigner(batch.CloudSigner, s.Program, s.Key)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.signer = signer
	s.applySlots = make(chan struct{}, s.MaxConcurrentApply)
	s.hlc.Now = s.Now
	var (
		tlsConfig *tls.Config
		certs     *certFiles
		ln        net.Listener
	)
	if s.TLSCertFile != "" {
		every := s.certCheckEvery
		if every <= 0 {
			every = certReloadCheck
		}
		var err error
		if certs, err = loadCertFiles(s.TLSCertFile, s.TLSKeyFile, every, s.Logger); err != nil {
			return err
		}
		tlsConfig = &tls.Config{GetCertificate: certs.getCertificate, MinVersion: tls.VersionTLS12}
	}
	ln, err = net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w (is another process using it?)", s.Addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.ln, s.srv, s.serveErr, s.certs = ln, srv, make(chan error, 1), certs
	s.mu.Unlock()
	go func() { s.serveErr <- srv.Serve(ln) }()
	s.Logger.Info("serving", logAddr, s.URL())
	return nil
}

// CertificateExpiry returns when the TLS certificate in service expires:
// zero without TLS or before Open. A renewed certificate replaces it
// within a minute of its files changing.
func (s *Server) CertificateExpiry() time.Time {
	s.mu.Lock()
	certs := s.certs
	s.mu.Unlock()
	if certs == nil {
		return time.Time{}
	}
	return certs.expiry()
}

// URL returns the base URL the server is reachable at, e.g.
// "https://127.0.0.1:41234"; empty before Open.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	scheme := "http"
	if s.TLSCertFile != "" {
		scheme = "https"
	}
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Close stops accepting requests and waits for those in flight, until ctx
// ends; then it closes what is left. It is safe to call twice.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv, closed := s.srv, s.closed
	s.closed = true
	s.mu.Unlock()
	if srv == nil || closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("server: shut down: %w", err)
	}
	return nil
}

// Handler returns the server's routes wrapped in logging and recovery. It
// needs the signer Open makes: call it after Open (tests may serve it
// in process with httptest).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("POST /v1/enroll", s.handleEnroll)
	mux.HandleFunc("POST /v1/batches", s.handleBatch)
	mux.HandleFunc("GET /v1/snapshots", s.handleSnapshots)
	mux.HandleFunc("GET /v1/rules", s.handleRules)
	mux.HandleFunc("GET /v1/roster", s.handleRoster)
	mux.HandleFunc("POST /v1/admin/enroll-codes", s.admin(s.handleCreateEnrollCode))
	mux.HandleFunc("POST /v1/admin/terminals/{terminal}/revoke", s.admin(s.handleRevoke))
	mux.HandleFunc("POST /v1/admin/rules", s.admin(s.handlePublishRules))
	mux.HandleFunc("POST /v1/admin/stores/{store}/gossip-key", s.admin(s.handleGossipKey))
	if s.Metrics != nil {
		mux.HandleFunc("GET /metrics", s.admin(s.Metrics.ServeHTTP))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.fail(w, r, problem(CodeMethodNotAllowed, "%s takes %s, not %s", r.URL.Path, strings.Join(allow, " or "), r.Method))
			return
		}
		s.fail(w, r, problem(CodeNotFound, "no route for %s %s; see the routes in the cloud/server package doc", r.Method, r.URL.Path))
	})
	return s.logRequests(mux)
}

// allowedMethods returns the methods mux has a route for at r's path, for
// a request the catch-all got: a 405 names them.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyTimeout bounds a readiness probe's wait for the database.
const readyTimeout = 2 * time.Second

// handleReady answers 200 while the ledger's database answers, and 503
// when it does not or has just refused a write for lack of room, so that
// a load balancer sends terminals elsewhere.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	switch err := s.Ledger.Ping(ctx); {
	case errors.Is(err, cloud.ErrStorageFull): // the ledger logs it, once a minute
		answer(w, problem(CodeStorageFull, "the ledger's database has no room to write; the operator must free space on its volume"))
		return
	case err != nil:
		s.Logger.Error("not ready: the ledger's database does not answer", logErr, err)
		answer(w, problem(CodeUnavailable, "the ledger's database does not answer; the cloud's log says why"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

// snapshotStamp returns the AsOf a member snapshot leaves with, strictly
// later than every stamp before it. A till keeps, per card, the snapshot
// with the latest AsOf and counts its own ops acknowledged up to then as
// included, so the stamp must order snapshots as the ledger's commits do:
// a feed takes its stamp before it reads the ledger, and an ack after its
// batch has committed. A feed page read while a batch was being applied
// then always loses to that batch's ack, whatever order the till gets them
// in. (Stamping with the batch's receive time did not: a feed read between
// receipt and commit carried a later AsOf and the older balance.)
func (s *Server) snapshotStamp() time.Time {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	t := s.Now().UTC().Truncate(time.Microsecond)
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t
}
