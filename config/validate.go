package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Role is what a binary does with the configuration; it decides which
// checks need the file system. Field checks (ranges, URLs, names) apply to
// every role.
type Role string

const (
	// RoleWorker calls IR. Everything is checked, including that the TLS,
	// M2M and token-key files exist, parse, match each other and (for
	// private keys) are readable by their owner only, and that the
	// secrets OAuth needs are present.
	RoleWorker Role = "worker"
	// RoleEnqueue only writes jobs to Redis (the enqueue CLI, producers
	// using the Go API): no TLS, M2M or token files are needed or checked.
	RoleEnqueue Role = "enqueue"
	// RoleSandbox runs the IR emulator, which makes its own CA and
	// certificates: no client files are checked, and the profile must be
	// sandbox.
	RoleSandbox Role = "sandbox"
)

// MaxM2MLifetime is the longest JWT lifetime IR accepts.
const MaxM2MLifetime = 8 * time.Hour

// Validate is ValidateFor(RoleWorker), the strictest role.
func (c *Config) Validate() error { return c.ValidateFor(RoleWorker) }

// ValidateFor checks the configuration for a binary of the given role and
// returns every problem at once, joined with errors.Join; each is a
// *FieldError naming its YAML path. A nil error means the binary can start.
// Secret values are never part of an error.
func (c *Config) ValidateFor(role Role) error {
	var es errs
	switch role {
	case RoleWorker, RoleEnqueue:
	case RoleSandbox:
		if c.Profile != ProfileSandbox {
			es.add("profile", fmt.Errorf("the sandbox runs only with the sandbox profile, not %q", string(c.Profile)))
		}
	default:
		return fmt.Errorf("config: unknown role %q", string(role))
	}
	if !c.Profile.Valid() {
		es.add("profile", unknownProfileError(c.Profile))
	}
	sandbox := c.Profile == ProfileSandbox

	// redis
	switch {
	case c.Redis.Cluster && len(c.Redis.Addrs()) == 0:
		es.add("redis.addr", errors.New("required with redis.cluster: one or more nodes of the cluster, comma-separated"))
	case c.Redis.Addr == "" && !sandbox:
		es.add("redis.addr", errors.New("required outside the sandbox profile"))
	case c.Redis.Cluster:
		for _, a := range c.Redis.Addrs() {
			if err := checkHostPort(a, true); err != nil {
				es.add("redis.addr", fmt.Errorf("seed node %q: %w", a, err))
			}
		}
	case c.Redis.Addr != "":
		if err := checkHostPort(c.Redis.Addr, true); err != nil {
			es.add("redis.addr", err)
		}
	}
	if c.Redis.Cluster && c.Redis.DB != 0 {
		es.add("redis.db", fmt.Errorf("must be 0 with redis.cluster (Redis Cluster has only database 0), got %d", c.Redis.DB))
	}
	if c.Redis.DB < 0 {
		es.add("redis.db", fmt.Errorf("must be >= 0, got %d", c.Redis.DB))
	}
	switch {
	case c.Redis.KeyPrefix == "":
		es.add("redis.key_prefix", errors.New("required, so gatewayq's keys cannot collide with others' (default gatewayq:)"))
	case strings.ContainsAny(c.Redis.KeyPrefix, "{}"):
		es.add("redis.key_prefix", fmt.Errorf("must not contain { or }: they would change the Redis Cluster hash slot of our keys; got %q", c.Redis.KeyPrefix))
	}
	if strings.ContainsAny(c.Redis.QueuePrefix, "{} ") {
		es.add("redis.queue_prefix", fmt.Errorf("must not contain {, } or spaces: asynq puts queue names in Redis Cluster hash tags; got %q", c.Redis.QueuePrefix))
	}
	positive(&es, "redis.dial_timeout", c.Redis.DialTimeout)

	// endpoints
	c.Endpoints.Cloud.check(&es, "endpoints.cloud", sandbox)
	c.Endpoints.Desktop.check(&es, "endpoints.desktop", sandbox)

	// oauth
	checkBaseURL(&es, "oauth.base_url", c.OAuth.BaseURL, sandbox)
	for _, p := range []struct{ field, path string }{
		{"oauth.authorize_path", c.OAuth.AuthorizePath},
		{"oauth.token_path", c.OAuth.TokenPath},
		{"oauth.introspect_path", c.OAuth.IntrospectPath},
		{"oauth.revoke_path", c.OAuth.RevokePath},
	} {
		// These name endpoints, not prefixes, so no trailing "/" is
		// required of them.
		if p.path == "" {
			es.add(p.field, errors.New("required"))
		} else if err := checkPath(p.path, false); err != nil {
			es.add(p.field, err)
		}
	}
	if c.OAuth.RedirectURL != "" {
		if err := checkURL(c.OAuth.RedirectURL, sandbox, true); err != nil {
			es.add("oauth.redirect_url", err)
		}
	}

	// tls
	if c.TLS.InsecureSkipVerify && !sandbox {
		es.add("tls.insecure_skip_verify", fmt.Errorf("refused in the %s profile: it would accept any server as IR; set tls.ca_bundle instead", string(c.Profile)))
	}

	// m2m
	switch c.M2M.Algorithm {
	case "RS256", "RS384", "RS512", "ES256", "ES384", "ES512":
	default:
		es.add("m2m.algorithm", fmt.Errorf("want one of RS256, RS384, RS512, ES256, ES384, ES512; got %q", c.M2M.Algorithm))
	}
	switch c.M2M.ThumbprintHash {
	case "sha256", "sha1":
	default:
		es.add("m2m.thumbprint_hash", fmt.Errorf("want sha256 or sha1; got %q", c.M2M.ThumbprintHash))
	}
	if c.M2M.Lifetime <= 0 || c.M2M.Lifetime > MaxM2MLifetime {
		es.add("m2m.lifetime", fmt.Errorf("must be more than 0 and at most %s (IR's maximum); got %s", MaxM2MLifetime, c.M2M.Lifetime))
	}
	if c.M2M.SigningKey != "" && c.M2M.Issuer == "" {
		es.add("m2m.issuer", errors.New("required when m2m.signing_key is set (the iss claim agreed with IR)"))
	}
	if c.M2M.SigningKey != "" && c.M2M.SigningCert == "" {
		es.add("m2m.signing_cert", errors.New("required when m2m.signing_key is set (its thumbprint is the JWT's sub)"))
	}
	if c.M2M.SigningCert != "" && c.M2M.SigningKey == "" {
		es.add("m2m.signing_key", errors.New("required when m2m.signing_cert is set"))
	}

	// tokens
	if c.Tokens.EncryptionKey != "" {
		if _, err := c.Tokens.DecodeKey(); err != nil {
			es.add("tokens.encryption_key", err)
		}
	}
	if !keyIDPattern.MatchString(c.Tokens.KeyID) {
		es.add("tokens.key_id", fmt.Errorf("want 1-32 characters of A-Z a-z 0-9 . _ -; got %q", c.Tokens.KeyID))
	}

	// gateway
	positive(&es, "gateway.call_timeout", c.Gateway.CallTimeout)
	if c.Gateway.MaxIdleConnsPerHost < 1 {
		es.add("gateway.max_idle_conns_per_host", fmt.Errorf("must be >= 1, got %d", c.Gateway.MaxIdleConnsPerHost))
	}
	for _, s := range []struct{ field, value string }{
		{"gateway.software_provider", c.Gateway.SoftwareProvider},
		{"gateway.software_platform", c.Gateway.SoftwarePlatform},
		{"gateway.software_release", c.Gateway.SoftwareRelease},
	} {
		if err := checkSoftwareField(s.value); err != nil {
			es.add(s.field, err)
		}
	}

	// limits
	checkRate(&es, "limits.cloud_rps", c.Limits.CloudRPS)
	checkBurst(&es, "limits.cloud_burst", c.Limits.CloudBurst)
	checkRate(&es, "limits.desktop_rps", c.Limits.DesktopRPS)
	checkBurst(&es, "limits.desktop_burst", c.Limits.DesktopBurst)
	if c.Limits.Mode != LimitFleet && c.Limits.Mode != LimitLocal {
		es.add("limits.mode", fmt.Errorf("want %s or %s; got %q", LimitFleet, LimitLocal, c.Limits.Mode))
	}
	nonNegative := func(field string, v int) {
		if v < 0 {
			es.add(field, fmt.Errorf("must be >= 0 (0 = no cap), got %d", v))
		}
	}
	nonNegative("limits.cloud_max_in_flight", c.Limits.CloudMaxInFlight)
	nonNegative("limits.desktop_max_in_flight", c.Limits.DesktopMaxInFlight)
	fraction := func(field string, v, lo, hi float64, loOpen bool) {
		if v > hi || v < lo || (loOpen && v == lo) {
			open := "["
			if loOpen {
				open = "("
			}
			es.add(field, fmt.Errorf("must be in %s%g, %g], got %g", open, lo, hi, v))
		}
	}
	fraction("limits.realtime_reserve", c.Limits.RealtimeReserve, 0, 0.9, false)
	fraction("limits.decrease_factor", c.Limits.DecreaseFactor, 0, 0.99, true)
	positive(&es, "limits.recovery", c.Limits.Recovery)
	fraction("limits.min_fraction", c.Limits.MinFraction, 0, 1, true)
	fraction("limits.degraded_fraction", c.Limits.DegradedFraction, 0, 1, true)
	if c.Limits.MaxWait < 0 {
		es.add("limits.max_wait", fmt.Errorf("must be >= 0, got %s", c.Limits.MaxWait))
	}
	fraction("breaker.failure_ratio", c.Breaker.FailureRatio, 0, 1, true)
	if c.Breaker.MinRequests < 1 {
		es.add("breaker.min_requests", fmt.Errorf("must be >= 1, got %d", c.Breaker.MinRequests))
	}
	if c.Breaker.ConsecutiveFailures < 0 {
		es.add("breaker.consecutive_failures", fmt.Errorf("must be >= 0 (0 = off), got %d", c.Breaker.ConsecutiveFailures))
	}
	positive(&es, "breaker.window", c.Breaker.Window)
	positive(&es, "breaker.open_for", c.Breaker.OpenFor)
	if c.Breaker.HalfOpenProbes < 1 {
		es.add("breaker.half_open_probes", fmt.Errorf("must be >= 1, got %d", c.Breaker.HalfOpenProbes))
	}

	// worker
	if c.Worker.Concurrency < 1 {
		es.add("worker.concurrency", fmt.Errorf("must be >= 1, got %d", c.Worker.Concurrency))
	}
	if len(c.Worker.Queues) == 0 {
		es.add("worker.queues", errors.New("at least one queue is required (realtime, bulk, redrive)"))
	}
	for _, name := range sortedKeys(c.Worker.Queues) {
		field := "worker.queues." + name
		switch name {
		case QueueRealtime, QueueBulk, QueueRedrive:
		default:
			es.add(field, fmt.Errorf("unknown queue %q (want realtime, bulk or redrive)", name))
			continue
		}
		if p := c.Worker.Queues[name]; p <= 0 {
			es.add(field, fmt.Errorf("priority must be > 0, got %d", p))
		}
	}
	if c.Gateway.CallTimeout > 0 && c.Worker.ShutdownTimeout <= c.Gateway.CallTimeout {
		es.add("worker.shutdown_timeout", fmt.Errorf("must be longer than gateway.call_timeout (%s), or a call in flight at shutdown is cut off and its outcome becomes uncertain; got %s", c.Gateway.CallTimeout, c.Worker.ShutdownTimeout))
	} else if c.Worker.ShutdownTimeout <= 0 {
		es.add("worker.shutdown_timeout", fmt.Errorf("must be > 0, got %s", c.Worker.ShutdownTimeout))
	}
	if c.Worker.MaxRetry < 0 {
		es.add("worker.max_retry", fmt.Errorf("must be >= 0, got %d", c.Worker.MaxRetry))
	}
	positive(&es, "worker.result_retention", c.Worker.ResultRetention)
	positive(&es, "worker.report_retention", c.Worker.ReportRetention)
	if (c.Worker.HealthCert == "") != (c.Worker.HealthKey == "") {
		es.add("worker.health_cert", errors.New("worker.health_cert and worker.health_key go together: set both to serve the health listener over TLS, or neither"))
	}
	if c.Worker.HealthAddr == "" {
		es.add("worker.health_addr", errors.New("required (host:port, e.g. :8080)"))
	} else if err := checkHostPort(c.Worker.HealthAddr, false); err != nil {
		es.add("worker.health_addr", err)
	}

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		es.add("log.level", fmt.Errorf("want debug, info, warn or error; got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		es.add("log.format", fmt.Errorf("want text or json; got %q", c.Log.Format))
	}

	// monitoring
	if c.Monitoring.Enabled {
		u := c.Monitoring.Username
		switch {
		case u == "":
			es.add("monitoring.username", errors.New("required when monitoring.enabled (the HTTP Basic user name)"))
		case strings.Contains(u, ":") || strings.IndexFunc(u, unicode.IsControl) >= 0 || !utf8.ValidString(u):
			es.add("monitoring.username", errors.New("must be UTF-8 without \":\" or control characters (HTTP Basic cannot carry them)"))
		}
		if p := c.Monitoring.Password; p != "" && utf8.RuneCountInString(p) < MinMonitoringPassword {
			es.add("monitoring.password", fmt.Errorf("too short: at least %d characters (make one with: openssl rand -base64 18)", MinMonitoringPassword))
		}
	}

	c.Schedule.check(&es)

	c.Ingest.check(&es)

	if role == RoleWorker {
		c.checkWorkerFiles(&es)
	}
	return es.join()
}

// checkWorkerFiles checks what only a binary that calls IR needs: the
// files and the secrets.
func (c *Config) checkWorkerFiles(es *errs) {
	// tls
	needPair := c.Endpoints.Cloud.MutualTLS || c.Endpoints.Desktop.MutualTLS
	if needPair && c.TLS.ClientCert == "" {
		es.add("tls.client_cert", errors.New("required: an endpoint has mutual_tls"))
	}
	if needPair && c.TLS.ClientKey == "" {
		es.add("tls.client_key", errors.New("required: an endpoint has mutual_tls"))
	}
	if c.TLS.ClientCert != "" || c.TLS.ClientKey != "" {
		checkKeyPair(es, "tls.client_cert", c.TLS.ClientCert, "tls.client_key", c.TLS.ClientKey)
	}
	if c.TLS.CABundle != "" {
		if b, ok := readFile(es, "tls.ca_bundle", c.TLS.CABundle); ok {
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				es.add("tls.ca_bundle", fmt.Errorf("%s holds no PEM certificate", c.TLS.CABundle))
			}
		}
	}

	// m2m
	if c.M2M.SigningKey != "" && c.M2M.SigningCert != "" {
		if cert, ok := checkKeyPair(es, "m2m.signing_cert", c.M2M.SigningCert, "m2m.signing_key", c.M2M.SigningKey); ok {
			if err := algorithmFits(c.M2M.Algorithm, cert.PublicKey); err != nil {
				es.add("m2m.algorithm", err)
			}
		}
	}

	// secrets loaded from files
	checkSecretFile(es, "oauth.client_secret_file", c.OAuth.ClientSecretFile, c.OAuth.secretFrom)
	checkSecretFile(es, "tokens.encryption_key_file", c.Tokens.EncryptionKeyFile, c.Tokens.keyFrom)
	if c.OAuth.ClientID != "" && c.OAuth.ClientSecret == "" && c.OAuth.ClientSecretFile == "" {
		es.add("oauth.client_secret", fmt.Errorf("required when oauth.client_id is set: set %s or oauth.client_secret_file", EnvName("oauth.client_secret")))
	}
	if c.OAuth.ClientID != "" && c.Tokens.EncryptionKey == "" && c.Tokens.EncryptionKeyFile == "" {
		es.add("tokens.encryption_key", fmt.Errorf("required when oauth.client_id is set (token sets are stored encrypted): set %s or tokens.encryption_key_file", EnvName("tokens.encryption_key")))
	}
	checkSecretFile(es, "monitoring.password_file", c.Monitoring.PasswordFile, c.Monitoring.passwordFrom)
	c.Ingest.checkFiles(es)
	if c.Monitoring.Enabled && c.Monitoring.Password == "" && c.Monitoring.PasswordFile == "" {
		// The worker would otherwise serve every job's payload, and with
		// read_only off the means to delete jobs, to anyone who can reach
		// worker.health_addr.
		es.add("monitoring.password", fmt.Errorf("required when monitoring.enabled: set %s or monitoring.password_file", EnvName("monitoring.password")))
	}
}

func checkSecretFile(es *errs, field, path, loadedFrom string) {
	if path == "" {
		return
	}
	if err := CheckKeyFile(field, path); err != nil {
		*es = append(*es, err)
		return
	}
	if loadedFrom != path {
		es.add(field, errors.New("not read yet: build the Config with Load, or call LoadSecrets"))
	}
}

// CheckKeyFile checks that the private key or secret file at path exists,
// is a regular file, can be read, and is readable by its owner only (mode
// & 0o077 == 0). Errors are *FieldError values naming field; a file that
// is too open wraps ErrKeyFileMode and says how to fix it. Other packages
// that read key files use it too, so that every key is held to the same
// rule. On Windows, whose file modes do not express this, only existence
// and readability are checked.
func CheckKeyFile(field, path string) error {
	if path == "" {
		return &FieldError{Field: field, Err: errors.New("no file given")}
	}
	fi, err := os.Stat(path) // follows symlinks: Kubernetes mounts secrets as links
	if err != nil {
		return &FieldError{Field: field, Err: err}
	}
	if !fi.Mode().IsRegular() {
		return &FieldError{Field: field, Err: fmt.Errorf("%s is not a regular file", path)}
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return &FieldError{Field: field, Err: fmt.Errorf("%s has mode %#o, %w; run: chmod 600 %s (in Kubernetes, set the secret volume's defaultMode to 0400)",
			path, perm, ErrKeyFileMode, shellQuote(path))}
	}
	f, err := os.Open(path)
	if err != nil {
		return &FieldError{Field: field, Err: err}
	}
	f.Close()
	return nil
}

// checkKeyPair checks a certificate file and its private key file, and
// that they belong together; it returns the parsed certificate when all is
// well.
func checkKeyPair(es *errs, certField, certPath, keyField, keyPath string) (*x509.Certificate, bool) {
	var cert *x509.Certificate
	certOK := false
	if certPath != "" {
		if b, ok := readFile(es, certField, certPath); ok {
			c, err := parseCertPEM(b)
			if err != nil {
				es.add(certField, fmt.Errorf("%s: %w", certPath, err))
			} else {
				cert, certOK = c, true
			}
		}
	}
	keyOK := false
	if keyPath != "" {
		if err := CheckKeyFile(keyField, keyPath); err != nil {
			*es = append(*es, err)
		} else {
			keyOK = true
		}
	}
	if !certOK || !keyOK {
		return nil, false
	}
	// LoadX509KeyPair's errors describe the problem, never the key.
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		es.add(keyField, fmt.Errorf("%s does not fit %s %s: %w", keyPath, certField, certPath, err))
		return nil, false
	}
	return cert, true
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// algorithmFits checks that the JWS algorithm can be used with the
// certificate's key, so a mismatch shows at start-up rather than as IR
// refusing every JWT.
func algorithmFits(alg string, pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if strings.HasPrefix(alg, "RS") {
			return nil
		}
		return fmt.Errorf("%s needs an ECDSA key, but m2m.signing_cert holds an RSA key (use RS256, RS384 or RS512)", alg)
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil {
			return fmt.Errorf("%s needs an RSA key, but m2m.signing_cert holds an ECDSA %s key", alg, k.Curve.Params().Name)
		}
		if k.Curve != want {
			return fmt.Errorf("%s needs an ECDSA %s key, but m2m.signing_cert holds %s", alg, want.Params().Name, k.Curve.Params().Name)
		}
		return nil
	default:
		return fmt.Errorf("m2m.signing_cert holds a %T key; IR accepts RSA or ECDSA", pub)
	}
}

func readFile(es *errs, field, path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		es.add(field, err)
		return nil, false
	}
	return b, true
}

// DecodeKey returns the 32-byte AES-256 key of EncryptionKey. Its errors
// never contain the key.
func (t Tokens) DecodeKey() ([]byte, error) {
	s := strings.TrimSpace(t.EncryptionKey)
	if s == "" {
		return nil, errors.New("no key set")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not valid base64 (make a key with: openssl rand -base64 32)")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("decodes to %d bytes, want 32 for AES-256 (make a key with: openssl rand -base64 32)", len(b))
	}
	return b, nil
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

func (e Endpoint) check(es *errs, name string, sandbox bool) {
	checkBaseURL(es, name+".base_url", e.BaseURL, sandbox)
	if e.MutualTLS && strings.HasPrefix(strings.ToLower(e.BaseURL), "http:") {
		es.add(name+".mutual_tls", errors.New("needs an https base_url"))
	}
	for _, p := range []struct{ key, path string }{
		{"returns_path", e.ReturnsPath},
		{"employment_path", e.EmploymentPath},
		{"intermediation_path", e.IntermediationPath},
		{"account_path", e.AccountPath},
	} {
		if p.path == "" {
			continue // service not offered on this endpoint
		}
		if err := checkPath(p.path, true); err != nil {
			es.add(name+"."+p.key, err)
		}
	}
}

// checkBaseURL checks a scheme://host[:port] URL with nothing after it.
func checkBaseURL(es *errs, field, s string, sandbox bool) {
	if s == "" {
		es.add(field, errors.New("required (scheme://host:port)"))
		return
	}
	if err := checkURL(s, sandbox, false); err != nil {
		es.add(field, err)
	}
}

func checkURL(s string, sandbox, pathAllowed bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %q", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && sandbox:
	case u.Scheme == "http":
		return fmt.Errorf("must be https outside the sandbox profile: %q", s)
	default:
		return fmt.Errorf("want an https:// URL, got %q", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("no host in %q", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port in %q", s)
		}
	}
	if u.User != nil {
		return fmt.Errorf("must not hold credentials: %s", u.Redacted())
	}
	if !pathAllowed && (u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery) {
		return fmt.Errorf("want scheme://host:port with no path (paths are separate settings), got %q", s)
	}
	return nil
}

// checkPath checks a URL path; prefixes (to which operations are
// appended) must also end with "/".
func checkPath(p string, prefix bool) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with /, got %q", p)
	}
	if prefix && !strings.HasSuffix(p, "/") {
		return fmt.Errorf("must end with /, got %q", p)
	}
	if strings.ContainsAny(p, "?#") || strings.Contains(p, "//") {
		return fmt.Errorf("must be a plain path (no ?, # or //), got %q", p)
	}
	if u, err := url.Parse(p); err != nil || u.Path != p {
		return fmt.Errorf("not a valid URL path: %q", p)
	}
	return nil
}

func checkHostPort(addr string, hostRequired bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if hostRequired && host == "" {
		return fmt.Errorf("no host in %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port in %q", addr)
	}
	return nil
}

// checkSoftwareField applies IR's XSD limits (normalizedString, 1-50
// characters) to a non-empty software* setting.
func checkSoftwareField(s string) error {
	if s == "" {
		return nil
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > 50 {
		return fmt.Errorf("at most 50 characters (IR's limit), got %d", n)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("must not contain tabs, line breaks or other control characters")
	}
	return nil
}

func positive(es *errs, field string, d time.Duration) {
	if d <= 0 {
		es.add(field, fmt.Errorf("must be > 0, got %s", d))
	}
}

func checkRate(es *errs, field string, r float64) {
	if !(r > 0) || math.IsInf(r, 0) {
		es.add(field, fmt.Errorf("must be a number of requests per second > 0, got %v", r))
	}
}

func checkBurst(es *errs, field string, b int) {
	if b < 1 {
		es.add(field, fmt.Errorf("must be >= 1, got %d", b))
	}
}

// sortedKeys gives the queue names in a stable order, so that errors come
// in the same order on every run.
func sortedKeys(q Queues) []string { return slices.Sorted(maps.Keys(q)) }

// shellQuote quotes path for a POSIX shell when it needs it.
func shellQuote(path string) string {
	if path != "" && strings.IndexFunc(path, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("/._-+:@%,", r)))
	}) < 0 {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}
