package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oauthSeeds are IR's sample request bodies, plus edge cases.
func oauthSeeds(f *testing.F) []string {
	f.Helper()
	dir := filepath.Join(testdata, "oauth")
	var seeds []string
	for _, p := range []string{
		"access_token/access-token-requestbody.txt",
		"refresh_token/refresh-token-requestbody.txt",
		"introspection/validate-token-requestbody.json",
		"revocation/revoke-token-requestbody.json",
	} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, strings.TrimSpace(string(b)))
	}
	return append(seeds, "", "&&&", "a=1&a=2", "a=%zz", "a;b=c", "grant_type=", "=x", "a=b+c%20d", "\x00=\xff")
}

func FuzzParseOAuthParams(f *testing.F) {
	for _, s := range oauthSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parseOAuthParams(raw)
		if err != nil {
			// A value may be a secret: errors quote at most a clipped name.
			if len(raw) > 48 && strings.Contains(err.Error(), raw) {
				t.Errorf("error quotes the input: %v", err)
			}
			return
		}
		for k, v := range p {
			if v == "" {
				t.Errorf("parameter %q kept with no value", k)
			}
		}
		// What was parsed encodes and parses back the same.
		vals := url.Values{}
		for k, v := range p {
			vals.Set(k, v)
		}
		again, err := parseOAuthParams(vals.Encode())
		if err != nil || !maps.Equal(again, p) {
			t.Errorf("round trip: %v %v != %v", err, again, p)
		}
	})
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{
		"Basic VGVzdDMwMjA2NDkyOk9hdXRoMklSU2VjcmV0dA==", // IR's sample header
		"basic " + base64.StdEncoding.EncodeToString([]byte("a%3Ab:p%40ss")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":secret")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("id%zz:secret")),
		"Basic !!!", "Basic", "Bearer x", "", "Basic  " + base64.StdEncoding.EncodeToString([]byte("a:b")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, ok, err := parseBasic(header)
		if !ok && err != nil {
			t.Errorf("not Basic, yet an error: %v", err)
		}
		if err != nil || !ok {
			if id != "" || secret != "" {
				t.Error("credentials returned with an error")
			}
			return
		}
		if id == "" {
			t.Error("empty client id accepted")
		}
		// RFC 6749 §2.3.1 encoding of what was parsed parses back the same.
		enc := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
		id2, secret2, ok2, err2 := parseBasic(enc)
		if err2 != nil || !ok2 || id2 != id || secret2 != secret {
			t.Errorf("round trip: %q %q %v %v", id2, secret2, ok2, err2)
		}
	})
}

// FuzzTokenEndpoint drives the token endpoint's handler in process with
// arbitrary bodies and Authorization headers: every answer is an OAuth
// JSON answer (200, 400 or 401), never a panic or a 500.
func FuzzTokenEndpoint(f *testing.F) {
	s, err := New(Options{OAuthClients: []OAuthClient{{ID: irSampleClientID, Secret: irSampleClientSecret, RedirectURIs: []string{"https://myreturnuri/test/"}}}})
	if err != nil {
		f.Fatal(err)
	}
	good := "Basic VGVzdDMwMjA2NDkyOk9hdXRoMklSU2VjcmV0dA=="
	for _, body := range oauthSeeds(f) {
		f.Add(body, good)
		f.Add(body, "")
	}
	f.Add("grant_type=refresh_token&refresh_token=x&client_secret=y", good)
	f.Add("grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fmyreturnuri%2Ftest%2F&code_verifier=abc", good)
	f.Fuzz(func(t *testing.T, body, auth string) {
		for _, path := range []string{OAuthTokenPath, OAuthIntrospectPath, OAuthRevokePath} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			switch path {
			case OAuthTokenPath:
				s.serveToken(rec, req)
			case OAuthIntrospectPath:
				s.serveIntrospect(rec, req)
			default:
				s.serveRevoke(rec, req)
			}
			var ans map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
				t.Fatalf("%s: HTTP %d, not JSON: %q", path, rec.Code, rec.Body.String())
			}
			switch rec.Code {
			case http.StatusOK:
				// This sandbox has issued no code or token, so no fuzzed
				// request can succeed.
				t.Errorf("%s: 200 for a fuzzed request: %v", path, ans)
			case http.StatusBadRequest, http.StatusUnauthorized:
				if e, _ := ans["error"].(string); e == "" {
					t.Errorf("%s: HTTP %d without an error code: %v", path, rec.Code, ans)
				}
			default:
				t.Errorf("%s: HTTP %d", path, rec.Code)
			}
		}
	})
}
