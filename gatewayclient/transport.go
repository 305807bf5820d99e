package gatewayclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"
)

// Endpoint is one of IR's listeners.
type Endpoint struct {
	// BaseURL is scheme and host, e.g. "https://test.services.ird.govt.nz:4046".
	// Environments differ only here: hosts are configuration, never constants.
	BaseURL string
	// MutualTLS presents Options.ClientCertificate in the handshake (the
	// cloud listener); false is one-way TLS (the desktop listener).
	MutualTLS bool
	// Paths maps a service to its path under BaseURL. A service missing here
	// takes DefaultPaths(kind); a service with no default there (e.g.
	// intermediation on desktop) is refused with ClassConfig.
	Paths map[Service]string
}

// DefaultPaths returns IR's paths of each service on a listener kind. Both
// listeners serve the same paths in IR's environments, with the desktop one
// under /gateway2/ and offering no intermediation or REST APIs.
func DefaultPaths(kind EndpointKind) map[Service]string {
	switch kind {
	case EndpointCloud:
		return map[Service]string{
			ServiceReturns:        "/gateway/gws/returns/",
			ServiceEmployment:     "/gateway/gws/employment/v2/",
			ServiceIntermediation: "/secure/gateway/gws/intermediation/",
			ServiceAccount:        "/gateway/account/",
		}
	case EndpointDesktop:
		return map[Service]string{
			ServiceReturns:    "/gateway2/gws/returns/",
			ServiceEmployment: "/gateway2/gws/employment/v2/",
		}
	}
	return nil
}

// Default transport settings.
const (
	DefaultCallTimeout         = 60 * time.Second
	DefaultMaxIdleConnsPerHost = 64
	// MaxResponseBytes bounds an answer's body; a larger one is
	// ClassMalformed. IR's largest answers (a retrieved return, a client
	// list) are far below it.
	MaxResponseBytes = 10 << 20

	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
)

// cipherSuites are the TLS 1.2 suites offered: ECDHE only (forward secrecy)
// with AEAD ciphers. IR's cloud listener wants ECDHE-ECDSA; the ECDHE-RSA
// suites are kept so a sandbox or proxy with an RSA certificate works too.
// TLS 1.3 suites are not configurable in Go and are all acceptable.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// newTransport builds the one http.Transport of an endpoint. Keep-alives
// are on and the idle pool is large, because a TLS handshake per call would
// cost more than the call. HTTP/2 is not attempted: IR's gateway speaks
// HTTP/1.1, and one multiplexed connection would put every call of a worker
// behind one TCP window and one throttle decision.
func newTransport(opts *Options, ep Endpoint) *http.Transport {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       cipherSuites,
		RootCAs:            opts.RootCAs,
		ServerName:         opts.ServerName,
		InsecureSkipVerify: opts.InsecureSkipVerify, // sandboxes and tests only; see Options
	}
	if ep.MutualTLS && opts.ClientCertificate != nil {
		cfg.Certificates = []tls.Certificate{*opts.ClientCertificate}
	}
	header := opts.CallTimeout
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        cfg,
		TLSHandshakeTimeout:    min(tlsHandshakeTimeout, opts.CallTimeout),
		ResponseHeaderTimeout:  header,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConns:           opts.MaxIdleConnsPerHost * 2,
		MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      false,
		// A non-nil empty map switches HTTP/2 off even if GODEBUG asks for it.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// LoadClientCertificate reads the mTLS client certificate (its chain) and
// private key from PEM files. The key file must not be readable by group or
// others.
func LoadClientCertificate(certFile, keyFile string) (tls.Certificate, error) {
	if err := checkPrivate(keyFile); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// tls's errors name files and PEM block types, never key material.
		return tls.Certificate{}, fmt.Errorf("gatewayclient: client certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// LoadCABundle reads PEM CA certificates to verify IR's (or the sandbox's)
// server certificate with.
func LoadCABundle(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gatewayclient: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("gatewayclient: CA bundle %s: no PEM certificate found", path)
	}
	return pool, nil
}

// errKeyPermissions is returned for a private key file others can read.
var errKeyPermissions = errors.New("private key file is readable by group or others (chmod 600)")

func checkPrivate(path string) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix permission bits to check
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("gatewayclient: client key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("gatewayclient: client key %s: %w", path, errKeyPermissions)
	}
	return nil
}
