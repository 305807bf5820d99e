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
	"sync/atomic"
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
	h      *Handler
	srv    *http.Server
	addr   string
	log    *slog.Logger
	reload *reloadable // nil unless built by FromConfig

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{} // closed when Serve returns
}

// NewServer returns a Server for h; it listens from Start.
func NewServer(h *Handler, opts ServerOptions) (*Server, error) {
	if opts.TLS == nil || len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil && opts.TLS.GetConfigForClient == nil {
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
	s.log.Info("ingest API listening", "addr", ln.Addr().String(), "client_certs", s.h.opts.ClientCerts, "api_keys", len(s.h.keys.Load().names))
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
// never a key). The section is expected to be validated already. The
// Server can Reload them later.
func FromConfig(c config.Ingest, d Deps) (*Server, error) {
	l, err := loadSection(c)
	if err != nil {
		return nil, err
	}
	h, err := New(Options{
		Enqueuer: d.Enqueuer, Finder: d.Finder, Redis: d.Redis, KeyPrefix: d.KeyPrefix, Keys: l.keys, ClientCerts: l.clientCerts,
		MaxBodyBytes: int64(c.MaxBodyBytes), MaxJobs: c.MaxJobs, Logger: d.Logger,
	})
	if err != nil {
		return nil, err
	}
	r := &reloadable{clientCerts: l.clientCerts, withKeys: len(l.keys) > 0}
	r.tls.Store(l.tls)
	s, err := NewServer(h, ServerOptions{Addr: c.Addr, TLS: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Each handshake takes the configuration of the latest load.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.tls.Load(), nil },
	}, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	s.reload = r
	return s, nil
}

// reloadable is what Reload may change in a Server FromConfig built.
type reloadable struct {
	tls atomic.Pointer[tls.Config]
	// How producers authenticate, fixed at start.
	clientCerts, withKeys bool
}

// section is what the ingest section's files hold.
type section struct {
	keys        []Key
	clientCerts bool
	tls         *tls.Config
}

func loadSection(c config.Ingest) (section, error) {
	keys, err := c.Keys()
	if err != nil {
		return section{}, fmt.Errorf("ingest.api_keys: %w", err)
	}
	if err := config.CheckKeyFile("ingest.key", c.Key); err != nil {
		return section{}, err
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return section{}, fmt.Errorf("ingest.cert: %w", err)
	}
	var pool *x509.CertPool
	if c.ClientCA != "" {
		b, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return section{}, fmt.Errorf("ingest.client_ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return section{}, fmt.Errorf("ingest.client_ca: %s holds no PEM certificate", c.ClientCA)
		}
	}
	ks := make([]Key, len(keys))
	for i, k := range keys {
		ks[i] = Key{Name: k.Name, Secret: k.Key}
	}
	t := ServerTLSConfig(cert, pool, pool != nil && len(ks) == 0)
	// What ServeTLS would add to a configuration it was given directly; a
	// configuration returned by GetConfigForClient is used as it is.
	t.NextProtos = []string{"h2", "http/1.1"}
	return section{keys: ks, clientCerts: pool != nil, tls: t}, nil
}

// Certificate is the certificate the listener presents now (after any
// Reload); nil if it cannot tell.
func (s *Server) Certificate() *x509.Certificate {
	c := s.srv.TLSConfig
	if s.reload != nil {
		c = s.reload.tls.Load()
	}
	if c == nil || len(c.Certificates) == 0 {
		return nil
	}
	if leaf := c.Certificates[0].Leaf; leaf != nil {
		return leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// ErrReloadNeedsRestart is returned by Reload for a change of how
// producers authenticate.
var ErrReloadNeedsRestart = errors.New("ingest: a reload cannot change how producers authenticate (ingest.client_ca set or not, API keys or none): restart the worker")

// Reload reads the ingest section's API keys, certificate and client CAs
// again (c comes from a fresh config.Load, which reads api_keys_file
// again): the keys apply from the next request, the certificate and CAs
// from the next TLS handshake; connections already open keep theirs. It
// refuses, keeping everything as it was, a section whose files fail to
// load, and one that would change how producers authenticate
// (ErrReloadNeedsRestart). Other settings of the section (address, limits)
// take effect at a restart.
func (s *Server) Reload(c config.Ingest) error {
	if s.reload == nil {
		return errors.New("ingest: only a Server built by FromConfig can reload")
	}
	l, err := loadSection(c)
	if err != nil {
		return err
	}
	if l.clientCerts != s.reload.clientCerts || (len(l.keys) > 0) != s.reload.withKeys {
		return ErrReloadNeedsRestart
	}
	if err := s.h.SetKeys(l.keys); err != nil {
		return fmt.Errorf("ingest.api_keys: %w", err)
	}
	s.reload.tls.Store(l.tls)
	names := make([]string, len(l.keys))
	for i, k := range l.keys {
		names[i] = k.Name
	}
	attrs := []any{"api_keys", names, "client_certs", l.clientCerts}
	if leaf := l.tls.Certificates[0].Leaf; leaf != nil {
		attrs = append(attrs, "cert_subject", leaf.Subject.CommonName, "cert_not_after", leaf.NotAfter)
	}
	s.log.Info("ingest: keys and certificates reloaded", attrs...)
	return nil
}
