// Package auth provides the credentials gatewayclient sends to IR: M2M JWTs
// the DSP signs itself (for the REST APIs), and end users' OAuth token sets,
// kept encrypted in Redis and handed out as "Bearer" headers (for return
// filing and the other SOAP services).
//
// Nothing secret — a private key, a JWT, an access or refresh token — is
// ever put in an error, a log record or the output of String.
package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // a certificate thumbprint, not a signature; IR's documents name SHA-1 in places
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// M2M token limits.
const (
	// MaxM2MLifetime is the longest exp - iat IR accepts.
	MaxM2MLifetime = 8 * time.Hour
	// DefaultM2MLifetime is used when M2MConfig.Lifetime is zero.
	DefaultM2MLifetime = time.Hour
	// minM2MLifetime keeps the refresh margin meaningful.
	minM2MLifetime = time.Minute
	// M2MKeyID is the "kid" header IR expects.
	M2MKeyID = "M2M"
)

// Thumbprint hashes for the "sub" claim.
const (
	ThumbprintSHA256 = "SHA-256" // IR's current documents; the default
	ThumbprintSHA1   = "SHA-1"   // older documents
)

// M2MConfig configures an M2MSigner.
type M2MConfig struct {
	// Key signs the JWTs: an *rsa.PrivateKey (2048 bits or more) or an
	// *ecdsa.PrivateKey. It is the JWT signing key registered with IR, not
	// the mTLS key.
	Key crypto.Signer
	// Cert is the certificate of Key registered with IR; its thumbprint is
	// the "sub" claim. Its public key must be Key's.
	Cert *x509.Certificate
	// Issuer is the "iss" claim agreed with IR. Required.
	Issuer string
	// Algorithm is RS256, RS384, RS512 (RSA keys) or ES256, ES384, ES512
	// (P-256, P-384, P-521 keys). Empty means RS256 for RSA and the
	// curve's own algorithm for ECDSA.
	Algorithm string
	// ThumbprintHash is ThumbprintSHA256 (default) or ThumbprintSHA1. IR's
	// documents disagree on which; the registered value decides.
	ThumbprintHash string
	// Lifetime is exp - iat; zero means DefaultM2MLifetime. At least a
	// minute and at most MaxM2MLifetime.
	Lifetime time.Duration
	// StartLogon is the optional "startLogon" claim.
	StartLogon string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// M2MSigner mints M2M JWTs and reuses each until shortly before it expires.
// It is safe for concurrent use; concurrent callers needing a new token wait
// for one signature rather than each making their own.
type M2MSigner struct {
	method     jwt.SigningMethod
	key        crypto.Signer
	sub        string
	issuer     string
	startLogon string
	lifetime   time.Duration
	margin     time.Duration // re-mint when less than this remains
	now        func() time.Time

	mu    sync.Mutex
	token string
	exp   time.Time
}

var _ gatewayclient.Credentials = (*M2MSigner)(nil)

// ErrAlgorithmMismatch is returned when the algorithm cannot be used with
// the key.
var ErrAlgorithmMismatch = errors.New("algorithm does not match the key")

// NewM2MSigner validates cfg and returns a signer.
func NewM2MSigner(cfg M2MConfig) (*M2MSigner, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.Key == nil {
		bad("Key: required")
	}
	if cfg.Cert == nil {
		bad("Cert: required")
	}
	if strings.TrimSpace(cfg.Issuer) == "" {
		bad("Issuer: required")
	}
	lifetime := cfg.Lifetime
	if lifetime == 0 {
		lifetime = DefaultM2MLifetime
	}
	if lifetime < minM2MLifetime || lifetime > MaxM2MLifetime {
		bad("Lifetime: %v is outside [%v, %v]", lifetime, minM2MLifetime, MaxM2MLifetime)
	}
	var method jwt.SigningMethod
	if cfg.Key != nil {
		var err error
		if method, err = signingMethod(cfg.Key, cfg.Algorithm); err != nil {
			bad("Algorithm: %w", err)
		}
	}
	if cfg.Key != nil && cfg.Cert != nil {
		if pub, ok := cfg.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cfg.Cert.PublicKey) {
			bad("Cert: its public key is not Key's")
		}
	}
	var sub string
	if cfg.Cert != nil {
		// config spells the hashes "sha256"/"sha1"; accept either spelling.
		switch strings.ReplaceAll(strings.ToUpper(cfg.ThumbprintHash), "-", "") {
		case "", "SHA256":
			h := sha256.Sum256(cfg.Cert.Raw)
			sub = strings.ToUpper(hex.EncodeToString(h[:]))
		case "SHA1":
			h := sha1.Sum(cfg.Cert.Raw) //nolint:gosec // see import
			sub = strings.ToUpper(hex.EncodeToString(h[:]))
		default:
			bad("ThumbprintHash: %q is neither %s nor %s", cfg.ThumbprintHash, ThumbprintSHA256, ThumbprintSHA1)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("auth: invalid M2M config: %w", errors.Join(errs...))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &M2MSigner{
		method:     method,
		key:        cfg.Key,
		sub:        sub,
		issuer:     cfg.Issuer,
		startLogon: cfg.StartLogon,
		lifetime:   lifetime,
		margin:     refreshMargin(lifetime),
		now:        now,
	}, nil
}

// refreshMargin is how long before expiry a token is replaced: 5 minutes or
// a tenth of the lifetime, whichever is longer, so a token handed out is
// never about to expire in flight; but never more than half the lifetime,
// so short lifetimes still get reuse.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(max(5*time.Minute, lifetime/10), lifetime/2)
}

func signingMethod(key crypto.Signer, alg string) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits; at least 2048 required", k.N.BitLen())
		}
		switch alg {
		case "", "RS256":
			return jwt.SigningMethodRS256, nil
		case "RS384":
			return jwt.SigningMethodRS384, nil
		case "RS512":
			return jwt.SigningMethodRS512, nil
		}
		return nil, fmt.Errorf("%w: %q with an RSA key (use RS256, RS384 or RS512)", ErrAlgorithmMismatch, alg)
	case *ecdsa.PrivateKey:
		want := map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
		if want == "" {
			return nil, fmt.Errorf("%w: unsupported ECDSA curve", ErrAlgorithmMismatch)
		}
		if alg == "" {
			alg = want
		}
		if alg != want {
			return nil, fmt.Errorf("%w: %q with a %s key (use %s)", ErrAlgorithmMismatch, alg, k.Curve.Params().Name, want)
		}
		return jwt.GetSigningMethod(alg), nil
	}
	return nil, fmt.Errorf("%w: key type %T (use an RSA or ECDSA private key)", ErrAlgorithmMismatch, key)
}

// m2mClaims are IR's M2M claims.
type m2mClaims struct {
	jwt.RegisteredClaims
	StartLogon string `json:"startLogon,omitempty"`
}

// Thumbprint returns the "sub" claim: the signing certificate's thumbprint,
// upper-case hex, as registered with IR.
func (s *M2MSigner) Thumbprint() string { return s.sub }

// AuthorizationHeader returns the bare JWT, which is what IR's M2M APIs
// expect in the Authorization header (no "Bearer").
func (s *M2MSigner) AuthorizationHeader(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.token != "" && now.Before(s.exp.Add(-s.margin)) {
		return s.token, nil
	}
	tok, exp, err := s.mint(now)
	if err != nil {
		return "", err
	}
	s.token, s.exp = tok, exp
	return tok, nil
}

func (s *M2MSigner) mint(now time.Time) (string, time.Time, error) {
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.lifetime)
	t := jwt.NewWithClaims(s.method, m2mClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   s.sub,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		StartLogon: s.startLogon,
	})
	t.Header["kid"] = M2MKeyID
	signed, err := t.SignedString(s.key)
	if err != nil {
		// jwt's errors describe the key or method, never the token.
		return "", time.Time{}, fmt.Errorf("auth: signing M2M JWT: %w", err)
	}
	return signed, exp, nil
}

// String describes the signer without its key or token.
func (s *M2MSigner) String() string {
	return fmt.Sprintf("M2MSigner{alg=%s sub=%s iss=%s lifetime=%v}", s.method.Alg(), s.sub, s.issuer, s.lifetime)
}

// LogValue implements slog.LogValuer, without the key or token.
func (s *M2MSigner) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("alg", s.method.Alg()),
		slog.String("sub", s.sub),
		slog.String("iss", s.issuer),
		slog.Duration("lifetime", s.lifetime),
	)
}

// ErrKeyPermissions is returned for a private key file readable by group or
// others.
var ErrKeyPermissions = errors.New("private key file is readable by group or others (chmod 600)")

// LoadSigningKeyPair reads the M2M signing key (PEM: PKCS#1 "RSA PRIVATE
// KEY", PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"; unencrypted) and its
// certificate (PEM "CERTIFICATE"). The key file must be readable by its
// owner only, and the certificate must match the key.
func LoadSigningKeyPair(keyFile, certFile string) (crypto.Signer, *x509.Certificate, error) {
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("auth: signing key: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, nil, fmt.Errorf("auth: signing key %s: %w", keyFile, ErrKeyPermissions)
		}
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: signing key: %w", err)
	}
	key, err := parsePrivateKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: signing key %s: %w", keyFile, err)
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: signing certificate: %w", err)
	}
	var cert *x509.Certificate
	for rest := cb; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if cert, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("auth: signing certificate %s: %w", certFile, err)
			}
			break
		}
	}
	if cert == nil {
		return nil, nil, fmt.Errorf("auth: signing certificate %s: no PEM CERTIFICATE block", certFile)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("auth: signing certificate %s does not match key %s", certFile, keyFile)
	}
	return key, cert, nil
}

// parsePrivateKey decodes the first private key block. Its errors name the
// block type at most, never key bytes.
func parsePrivateKey(b []byte) (crypto.Signer, error) {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("no PEM private key block")
		}
		if blk.Headers["Proc-Type"] != "" || blk.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("encrypted PEM keys are not supported; decrypt it into a file only its owner can read")
		}
		var (
			k   any
			err error
		)
		switch blk.Type {
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", blk.Type, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s block holds a %T, not a signing key", blk.Type, k)
		}
		return signer, nil
	}
}
