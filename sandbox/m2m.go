package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// M2M JWT rules, from IR's M2M documentation (DESIGN.md).
const (
	m2mKid       = "M2M"
	m2mMaxLife   = 8 * time.Hour
	m2mLeeway    = 30 * time.Second
	maxJWTLength = 16 << 10
)

var m2mAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}

// Reasons an M2M JWT is refused. They are for tests and logs; the client
// only ever sees EV1020.
var (
	errM2MKid     = errors.New("m2m: header kid is not \"M2M\"")
	errM2MKeyAlg  = errors.New("m2m: alg does not match the registered signing key")
	errM2MIat     = errors.New("m2m: iat missing")
	errM2MLife    = errors.New("m2m: exp more than 8h after iat")
	errM2MTooLong = errors.New("m2m: token too long")
)

// verifyM2M checks a bare JWT from an Authorization header against the
// registered signing certificate: signature, kid, alg (one of IR's six and
// matching the key), sub (the certificate's thumbprint), iss, iat present,
// exp present, not expired and at most 8 hours after iat.
func verifyM2M(raw string, pub crypto.PublicKey, thumbprint, issuer string, now func() time.Time) (*jwt.RegisteredClaims, error) {
	if pub == nil {
		return nil, errNoSigningKey
	}
	if len(raw) > maxJWTLength {
		return nil, errM2MTooLong
	}
	claims := &jwt.RegisteredClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods(m2mAlgs),
		jwt.WithIssuer(issuer),
		jwt.WithSubject(thumbprint),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(m2mLeeway),
		jwt.WithTimeFunc(now),
	)
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != m2mKid {
			return nil, errM2MKid
		}
		if !algFitsKey(t.Method.Alg(), pub) {
			return nil, errM2MKeyAlg
		}
		return pub, nil
	})
	if err != nil {
		return nil, fmt.Errorf("m2m: %w", err)
	}
	if claims.IssuedAt == nil {
		return nil, errM2MIat
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > m2mMaxLife {
		return nil, errM2MLife
	}
	return claims, nil
}

// algFitsKey reports whether alg is the algorithm for the registered key:
// RS* for an RSA key, ES256/384/512 for a P-256/384/521 key.
func algFitsKey(alg string, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	}
	return false
}

// looksLikeJWT reports whether s has a JWS compact serialisation's shape
// (three base64url segments), to tell an M2M JWT from an opaque token.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	for _, p := range parts {
		for _, c := range p {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
