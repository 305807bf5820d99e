package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
)

// ServerTLSConfig is the ingest listener's TLS: version 1.2 or later, cert
// as the server certificate. With clientCAs, client certificates are
// verified against them: required when requireClientCert (mutual TLS is
// the only way in), otherwise optional, so API-key callers without one
// still connect. A certificate that does not verify fails the handshake.
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool, requireClientCert bool) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if requireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c
}

// Server timeouts: a slow or stalled client cannot hold a connection for
// ever. WriteTimeout exceeds the Handler's own Timeout so that the answer
// of a list that took long to enqueue still reaches the client.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = DefaultTimeout + 30*time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is the host:port to listen on (":0" picks a free port).
	Addr string
	// TLS is the listener's TLS configuration (ServerTLSConfig). Required:
	// the ingest API is not served in the clear.
	TLS    *tls.Config
	Logger *slog.Logger
}

// Server serves a Handler on its own TLS listener.
type Server struct {
	h    *Handler
	srv  *http.Server
	addr string
	log  *slog.Logger

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{} // closed when Serve returns
}

// NewServer returns a Server for h; it listens from Start.
func NewServer(h *Handler, opts ServerOptions) (*Server, error) {
	if opts.TLS == nil || len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil {
		return nil, errors.New("ingest: a TLS configuration with a certificate is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         opts.TLS,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Failed handshakes (a client certificate from another CA, a
		// plain-HTTP client) are worth seeing, not alarming.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	return &Server{h: h, srv: srv, addr: opts.Addr, log: log}, nil
}

// Handle adds a route to the Server's Handler (see Handler.Handle).
func (s *Server) Handle(pattern string, handler http.Handler) { s.h.Handle(pattern, handler) }

// Start binds the listener and serves in the background until Shutdown.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ln = ln
	s.done = make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		// ServeTLS takes the certificate from srv.TLSConfig and adds HTTP/2.
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("ingest server stopped", "err", err)
		}
	}()
	s.log.Info("ingest API listening", "addr", ln.Addr().String(), "client_certs", s.h.opts.ClientCerts, "api_keys", len(s.h.keys.names))
	return nil
}

// Addr is the address the listener is bound to, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops taking requests and waits, until ctx ends, for those in
// flight; then it closes what is left. A Server never started returns
// at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_ = s.srv.Close()
	}
	if done != nil {
		<-done
	}
	return err
}

// Deps are what FromConfig needs besides the config section.
type Deps struct {
	Enqueuer  Enqueuer
	Finder    Finder
	Redis     redis.UniversalClient
	KeyPrefix string
	Logger    *slog.Logger
}

// FromConfig builds the Server the ingest section describes: it loads the
// certificate, the client CAs and the API keys (errors name the setting,
// never a key). The section is expected to be validated already.
func FromConfig(c config.Ingest, d Deps) (*Server, error) {
	keys, err := c.Keys()
	if err != nil {
		return nil, fmt.Errorf("ingest.api_keys: %w", err)
	}
	if err := config.CheckKeyFile("ingest.key", c.Key); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("ingest.cert: %w", err)
	}
	var pool *x509.CertPool
	if c.ClientCA != "" {
		b, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("ingest.client_ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("ingest.client_ca: %s holds no PEM certificate", c.ClientCA)
		}
	}
	ks := make([]Key, len(keys))
	for i, k := range keys {
		ks[i] = Key{Name: k.Name, Secret: k.Key}
	}
	h, err := New(Options{
		Enqueuer: d.Enqueuer, Finder: d.Finder, Redis: d.Redis, KeyPrefix: d.KeyPrefix, Keys: ks, ClientCerts: pool != nil,
		MaxBodyBytes: int64(c.MaxBodyBytes), MaxJobs: c.MaxJobs, Logger: d.Logger,
	})
	if err != nil {
		return nil, err
	}
	return NewServer(h, ServerOptions{Addr: c.Addr, TLS: ServerTLSConfig(cert, pool, pool != nil && len(ks) == 0), Logger: d.Logger})
}
