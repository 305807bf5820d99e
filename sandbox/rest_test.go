package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// m2mClaims are valid claims for s at now.
func m2mClaims(s *Sandbox, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": s.PKI().SigningThumbprint,
		"iss": DefaultM2MIssuer,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// signM2M signs claims as a DSP would: ES256 with the registered key and
// kid "M2M", unless edit changes the token first.
func signM2M(t *testing.T, p *PKI, claims jwt.MapClaims, edit func(*jwt.Token) any) string {
	t.Helper()
	block, _ := pem.Decode(p.SigningKeyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = "M2M"
	signWith := any(key)
	if edit != nil {
		if k := edit(tok); k != nil {
			signWith = k
		}
	}
	s, err := tok.SignedString(signWith)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestM2MVerification(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	now := h.clock.Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	otherP256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	with := func(k string, v any) jwt.MapClaims {
		c := m2mClaims(h.s, now)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	good := signM2M(t, h.s.PKI(), m2mClaims(h.s, now), nil)
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"good", good, true},
		{"good at the 8h limit", signM2M(t, h.s.PKI(), with("exp", now.Add(8*time.Hour).Unix()), nil), true},
		{"wrong kid", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(tk *jwt.Token) any { tk.Header["kid"] = "m2m"; return nil }), false},
		{"no kid", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(tk *jwt.Token) any { delete(tk.Header, "kid"); return nil }), false},
		{"RS256 with another key", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(tk *jwt.Token) any {
			tk.Method = jwt.SigningMethodRS256
			tk.Header["alg"] = "RS256"
			return rsaKey
		}), false},
		{"ES384 for a P-256 key", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(tk *jwt.Token) any {
			tk.Method = jwt.SigningMethodES384
			tk.Header["alg"] = "ES384"
			return p384
		}), false},
		{"HS256", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(tk *jwt.Token) any {
			tk.Method = jwt.SigningMethodHS256
			tk.Header["alg"] = "HS256"
			return []byte(h.s.PKI().SigningThumbprint)
		}), false},
		{"signed by another P-256 key", signM2M(t, h.s.PKI(), m2mClaims(h.s, now), func(*jwt.Token) any { return otherP256 }), false},
		{"wrong sub", signM2M(t, h.s.PKI(), with("sub", strings.ToLower(h.s.PKI().SigningThumbprint)), nil), false},
		{"wrong iss", signM2M(t, h.s.PKI(), with("iss", "someone-else"), nil), false},
		{"no iat", signM2M(t, h.s.PKI(), with("iat", nil), nil), false},
		{"no exp", signM2M(t, h.s.PKI(), with("exp", nil), nil), false},
		{"exp - iat > 8h", signM2M(t, h.s.PKI(), with("exp", now.Add(8*time.Hour+time.Second).Unix()), nil), false},
		{"expired", signM2M(t, h.s.PKI(), jwt.MapClaims{
			"sub": h.s.PKI().SigningThumbprint, "iss": DefaultM2MIssuer,
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		}, nil), false},
		{"issued in the future", signM2M(t, h.s.PKI(), jwt.MapClaims{
			"sub": h.s.PKI().SigningThumbprint, "iss": DefaultM2MIssuer,
			"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix(),
		}, nil), false},
		{"tampered payload", tamper(good), false},
		{"none alg", noneToken(t, m2mClaims(h.s, now)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifyM2M(tt.tok, h.s.PKI().signingPub, h.s.PKI().SigningThumbprint, DefaultM2MIssuer, h.clock.Now)
			if (err == nil) != tt.ok {
				t.Fatalf("verify: err=%v, want ok=%v", err, tt.ok)
			}
			// And over the wire, on the Account API.
			a := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+"/gateway/account/list", "application/json", tt.tok,
				[]byte(`{"CustomerID":"1512100301","CustomerIDType":"CST"}`))
			wantHTTP := http.StatusOK
			if !tt.ok {
				wantHTTP = http.StatusUnauthorized
			}
			if a.HTTP != wantHTTP {
				t.Errorf("HTTP %d, want %d: %s", a.HTTP, wantHTTP, a.Body)
			}
			if !tt.ok && !strings.Contains(string(a.Body), `"EV1020"`) {
				t.Errorf("body %s, want EV1020", a.Body)
			}
		})
	}
	t.Run("not on the desktop listener", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+"/gateway/account/list", "application/json", good,
			[]byte(`{"CustomerID":"1512100301","CustomerIDType":"CST"}`))
		if a.HTTP != http.StatusUnauthorized {
			t.Errorf("HTTP %d", a.HTTP)
		}
	})
}

// tamper changes one claim without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	claims, _ := jwt.NewParser().DecodeSegment(parts[1])
	claims = []byte(strings.Replace(string(claims), `"iss":"`, `"iss":"x`, 1))
	parts[1] = strings.TrimRight(jwtEncode(claims), "=")
	return strings.Join(parts, ".")
}

func jwtEncode(b []byte) string { return (&jwt.Token{}).EncodeSegment(b) }

func noneToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	tok.Header["kid"] = "M2M"
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAccountAPISamples(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.s.Deny("alice", "132253579INC002", "") // the account of IR's EV1022 sample
	dir := filepath.Join(testdata, "rest-account", "samples")
	tests := []struct {
		name     string
		path     string
		wantHTTP int
	}{
		{"POST_200_Account_with_FAM_account", "account", 200},
		{"POST_200_Account_with_GST_account", "account", 200},
		{"POST_200_Account_with_INC_account", "account", 200},
		{"POST_200_list", "list", 200},
		{"POST_400_account_EV1022", "account", 400},
		{"POST_400_list_EV1100", "list", 400},
	}
	for _, tt := range tests {
		for _, base := range []string{"/gateway/account/", "/secure/gateway/account/"} {
			t.Run(tt.name+base, func(t *testing.T) {
				t.Parallel()
				req := readFile(t, filepath.Join(dir, tt.name+"_request.json"))
				want := readFile(t, filepath.Join(dir, tt.name+"_response.json"))
				a := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+base+tt.path, "application/json", h.bearer(), req)
				if a.HTTP != tt.wantHTTP {
					t.Fatalf("HTTP %d, want %d: %s", a.HTTP, tt.wantHTTP, a.Body)
				}
				if !jsonEqual(t, a.Body, want) {
					t.Errorf("answer\n%s\nwant IR's sample\n%s", a.Body, want)
				}
			})
		}
	}
	t.Run("status", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.cloud, http.MethodGet, h.s.CloudURL()+"/gateway/account/status", "", "", nil)
		if a.HTTP != 200 || string(a.Body) != "OK" {
			t.Errorf("HTTP %d %q", a.HTTP, a.Body)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+"/gateway/account/list", "application/json", "", []byte(`{}`))
		if a.HTTP != http.StatusUnauthorized || !strings.Contains(string(a.Body), "EV1021") {
			t.Errorf("HTTP %d %s", a.HTTP, a.Body)
		}
	})
	t.Run("identifier replaced", func(t *testing.T) {
		t.Parallel()
		a := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+"/gateway/account/account", "application/json", h.bearer(),
			[]byte(`{"AccountID":"111111111GST001","AccountIDType":"ACC"}`))
		if a.HTTP != 200 || !strings.Contains(string(a.Body), `"ID": "111111111GST001"`) {
			t.Errorf("HTTP %d %s", a.HTTP, a.Body)
		}
	})
	t.Run("M2M delegation", func(t *testing.T) {
		t.Parallel()
		h.s.Deny(M2MUser, "222222222", "")
		a := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+"/gateway/account/list", "application/json",
			signM2M(t, h.s.PKI(), m2mClaims(h.s, h.clock.Now()), nil), []byte(`{"CustomerID":"222222222","CustomerIDType":"IRD"}`))
		if a.HTTP != 400 || !strings.Contains(string(a.Body), "EV1022") {
			t.Errorf("HTTP %d %s", a.HTTP, a.Body)
		}
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("sample is not JSON: %v", err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
