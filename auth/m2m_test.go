package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // thumbprint check
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaSmall *rsa.PrivateKey
	ecKeys   map[string]*ecdsa.PrivateKey
)

func testKeys() {
	keysOnce.Do(func() {
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaSmall, _ = rsa.GenerateKey(rand.Reader, 1024)
		ecKeys = map[string]*ecdsa.PrivateKey{}
		for name, c := range map[string]elliptic.Curve{"P256": elliptic.P256(), "P384": elliptic.P384(), "P521": elliptic.P521()} {
			ecKeys[name], _ = ecdsa.GenerateKey(c, rand.Reader)
		}
	})
}

func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "gatewayq M2M signing"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) {
	c.ns.Add(int64(d))
}

func TestM2MSignerClaimsAndHeader(t *testing.T) {
	t.Parallel()
	testKeys()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name, alg, hash string
		key             crypto.Signer
		wantAlg         string
	}{
		{"RS256 default", "", "", rsaKey, "RS256"},
		{"RS384", "RS384", "", rsaKey, "RS384"},
		{"RS512 SHA-1 thumbprint", "RS512", ThumbprintSHA1, rsaKey, "RS512"},
		{"ES256 default", "", "", ecKeys["P256"], "ES256"},
		{"ES384", "ES384", "", ecKeys["P384"], "ES384"},
		{"ES512", "ES512", ThumbprintSHA256, ecKeys["P521"], "ES512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert := selfSigned(t, tt.key)
			s, err := NewM2MSigner(M2MConfig{Key: tt.key, Cert: cert, Issuer: "dsp-issuer", Algorithm: tt.alg,
				ThumbprintHash: tt.hash, StartLogon: "logon-1", Lifetime: 2 * time.Hour, Now: func() time.Time { return start }})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := s.AuthorizationHeader(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tok, "Bearer") {
				t.Fatal("M2M JWT must be sent bare")
			}
			var claims m2mClaims
			parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return tt.key.Public(), nil },
				jwt.WithValidMethods([]string{tt.wantAlg}), jwt.WithTimeFunc(func() time.Time { return start }), jwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Header["kid"] != "M2M" || parsed.Header["alg"] != tt.wantAlg {
				t.Errorf("header = %v", parsed.Header)
			}
			var want string
			if tt.hash == ThumbprintSHA1 {
				h := sha1.Sum(cert.Raw) //nolint:gosec // thumbprint check
				want = strings.ToUpper(hex.EncodeToString(h[:]))
			} else {
				h := sha256.Sum256(cert.Raw)
				want = strings.ToUpper(hex.EncodeToString(h[:]))
			}
			if claims.Subject != want || s.Thumbprint() != want {
				t.Errorf("sub = %q, want %q", claims.Subject, want)
			}
			if claims.Issuer != "dsp-issuer" || claims.StartLogon != "logon-1" {
				t.Errorf("claims = %+v", claims)
			}
			if !claims.IssuedAt.Time.Equal(start) || !claims.ExpiresAt.Time.Equal(start.Add(2*time.Hour)) {
				t.Errorf("iat %v exp %v", claims.IssuedAt, claims.ExpiresAt)
			}
			// The signature really covers the token: a flipped claim fails.
			parts := strings.Split(tok, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			payload = []byte(strings.Replace(string(payload), "dsp-issuer", "dsp-issuez", 1))
			parts[1] = base64.RawURLEncoding.EncodeToString(payload)
			_, err = jwt.Parse(strings.Join(parts, "."), func(*jwt.Token) (any, error) { return tt.key.Public(), nil },
				jwt.WithTimeFunc(func() time.Time { return start }))
			if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Errorf("tampered token: err = %v, want invalid signature", err)
			}
		})
	}
}

func TestNewM2MSignerRefuses(t *testing.T) {
	t.Parallel()
	testKeys()
	rsaCert := selfSigned(t, rsaKey)
	p256Cert := selfSigned(t, ecKeys["P256"])
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		cfg  M2MConfig
		want string
	}{
		{"RS256 with EC key", M2MConfig{Key: ecKeys["P256"], Cert: p256Cert, Issuer: "i", Algorithm: "RS256"}, "Algorithm"},
		{"ES256 with RSA key", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Algorithm: "ES256"}, "Algorithm"},
		{"ES384 with P-256", M2MConfig{Key: ecKeys["P256"], Cert: p256Cert, Issuer: "i", Algorithm: "ES384"}, "Algorithm"},
		{"HS256", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Algorithm: "HS256"}, "Algorithm"},
		{"none", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Algorithm: "none"}, "Algorithm"},
		{"Ed25519", M2MConfig{Key: edKey, Cert: rsaCert, Issuer: "i"}, "Algorithm"},
		{"small RSA", M2MConfig{Key: rsaSmall, Cert: selfSigned(t, rsaSmall), Issuer: "i"}, "2048"},
		{"lifetime over 8h", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Lifetime: 8*time.Hour + time.Second}, "Lifetime"},
		{"lifetime tiny", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Lifetime: time.Second}, "Lifetime"},
		{"cert of another key", M2MConfig{Key: rsaKey, Cert: p256Cert, Issuer: "i"}, "public key"},
		{"no issuer", M2MConfig{Key: rsaKey, Cert: rsaCert}, "Issuer"},
		{"no key", M2MConfig{Cert: rsaCert, Issuer: "i"}, "Key"},
		{"bad hash", M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", ThumbprintHash: "MD5"}, "ThumbprintHash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewM2MSigner(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
	// Exactly 8 hours is allowed.
	if _, err := NewM2MSigner(M2MConfig{Key: rsaKey, Cert: rsaCert, Issuer: "i", Lifetime: MaxM2MLifetime}); err != nil {
		t.Errorf("8h lifetime refused: %v", err)
	}
}

func TestM2MSignerReuseAndRemint(t *testing.T) {
	t.Parallel()
	testKeys()
	clk := newClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	s, err := NewM2MSigner(M2MConfig{Key: ecKeys["P256"], Cert: selfSigned(t, ecKeys["P256"]), Issuer: "i", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, _ := s.AuthorizationHeader(ctx)

	// Concurrent callers share the one token.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if tok, _ := s.AuthorizationHeader(ctx); tok != first {
				t.Error("concurrent caller got a different token")
			}
		})
	}
	wg.Wait()

	// 1h lifetime: margin is max(5m, 6m) = 6m. At 53m59s it is reused...
	clk.Add(53*time.Minute + 59*time.Second)
	if tok, _ := s.AuthorizationHeader(ctx); tok != first {
		t.Error("token re-minted too early")
	}
	// ...and at 54m it is replaced, by one with a fresh iat.
	clk.Add(time.Second)
	second, _ := s.AuthorizationHeader(ctx)
	if second == first {
		t.Fatal("token not re-minted near expiry")
	}
	var c m2mClaims
	if _, _, err := jwt.NewParser().ParseUnverified(second, &c); err != nil {
		t.Fatal(err)
	}
	if !c.IssuedAt.Time.Equal(clk.Now()) {
		t.Errorf("new iat = %v, want %v", c.IssuedAt.Time, clk.Now())
	}
	if tok, _ := s.AuthorizationHeader(ctx); tok != second {
		t.Error("new token not reused")
	}
}

func TestRefreshMargin(t *testing.T) {
	t.Parallel()
	tests := []struct{ lifetime, want time.Duration }{
		{time.Minute, 30 * time.Second},
		{10 * time.Minute, 5 * time.Minute},
		{time.Hour, 6 * time.Minute},
		{8 * time.Hour, 48 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			t.Parallel()
			if got := refreshMargin(tt.lifetime); got != tt.want {
				t.Errorf("refreshMargin(%v) = %v, want %v", tt.lifetime, got, tt.want)
			}
		})
	}
}

func TestM2MSignerNeverLeaksToken(t *testing.T) {
	t.Parallel()
	testKeys()
	s, err := NewM2MSigner(M2MConfig{Key: rsaKey, Cert: selfSigned(t, rsaKey), Issuer: "i"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.AuthorizationHeader(context.Background())
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, out := range []string{s.String(), s.LogValue().String()} {
		if strings.Contains(out, sig) {
			t.Errorf("token in %q", out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AuthorizationHeader(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	} else if strings.Contains(err.Error(), sig) {
		t.Error("token in error")
	}
	// A signing failure (key swapped for one jwt cannot use) names no token.
	s.key = ed25519.PrivateKey(make([]byte, ed25519.PrivateKeySize))
	s.token = ""
	_, err = s.AuthorizationHeader(context.Background())
	if err == nil || strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), "eyJ") {
		t.Errorf("signing error = %v", err)
	}
}

func TestLoadSigningKeyPair(t *testing.T) {
	t.Parallel()
	testKeys()
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	rsaCert := write("rsa.crt", pemOf("CERTIFICATE", selfSigned(t, rsaKey).Raw), 0o644)
	ecCert := write("ec.crt", pemOf("CERTIFICATE", selfSigned(t, ecKeys["P384"]).Raw), 0o644)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKeys["P384"])
	sec1, _ := x509.MarshalECPrivateKey(ecKeys["P384"])
	tests := []struct {
		name      string
		key, cert string
		wantErr   error
		wantText  string
	}{
		{"PKCS#1", write("k1.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), 0o600), rsaCert, nil, ""},
		{"PKCS#8", write("k8.pem", pemOf("PRIVATE KEY", pkcs8), 0o600), ecCert, nil, ""},
		{"SEC 1", write("ks.pem", append(pemOf("EC PARAMETERS", []byte{6, 5, 43, 129, 4, 0, 34}), pemOf("EC PRIVATE KEY", sec1)...), 0o600), ecCert, nil, ""},
		{"world readable", write("kw.pem", pemOf("PRIVATE KEY", pkcs8), 0o644), ecCert, ErrKeyPermissions, ""},
		{"mismatched cert", write("km.pem", pemOf("PRIVATE KEY", pkcs8), 0o600), rsaCert, nil, "does not match"},
		{"encrypted", write("ke.pem", pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2}), 0o600), ecCert, nil, "encrypted"},
		{"not PEM", write("kn.pem", []byte("hello"), 0o600), ecCert, nil, "no PEM private key"},
		{"no cert", write("k9.pem", pemOf("PRIVATE KEY", pkcs8), 0o600), write("empty.crt", nil, 0o644), nil, "no PEM CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, cert, err := LoadSigningKeyPair(tt.key, tt.cert)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.wantText != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("err = %v, want %q", err, tt.wantText)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if _, err := NewM2MSigner(M2MConfig{Key: key, Cert: cert, Issuer: "i"}); err != nil {
					t.Fatalf("loaded pair unusable: %v", err)
				}
			}
		})
	}
}
