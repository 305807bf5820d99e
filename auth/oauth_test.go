package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ir-gws", "oauth", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sampleForm parses one of IR's request body samples (some have stray spaces).
func sampleForm(t testing.TB, path string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(strings.TrimSpace(sample(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range v {
		for i := range vs {
			vs[i] = strings.TrimSpace(vs[i])
		}
		v[k] = vs
	}
	return v
}

// recorder is an OAuth server answering with a canned body and recording
// what arrived.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	path   string
	header http.Header
	form   url.Values
	status int
	body   string
}

func newRecorder(t *testing.T, status int, body string) *recorder {
	r := &recorder{status: status, body: body}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(b))
		r.mu.Lock()
		r.path, r.header, r.form = req.URL.Path, req.Header.Clone(), form
		status, body := r.status, r.body
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) client(now time.Time) *OAuthClient {
	return &OAuthClient{BaseURL: r.srv.URL, ClientID: fakeClientID, ClientSecret: fakeSecret, HTTPClient: r.srv.Client(), Now: func() time.Time { return now }}
}

// sampleAuthorization is the Basic header of IR's samples (Test30206492:Oauth2IRSecrett).
const sampleAuthorization = "Basic VGVzdDMwMjA2NDkyOk9hdXRoMklSU2VjcmV0dA=="

func TestOAuthRequestsMatchIRSamples(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	refreshReply := sample(t, "refresh_token/refresh-token-reply.json")
	var reply struct{ AccessToken, RefreshToken string }
	must(t, json.Unmarshal([]byte(strings.NewReplacer("access_token", "AccessToken", "refresh_token", "RefreshToken").Replace(refreshReply)), &reply))

	tests := []struct {
		name     string
		respBody string
		call     func(c *OAuthClient) error
		path     string
		want     url.Values
	}{
		{"exchange", sample(t, "access_token/access-token-response.txt"), func(c *OAuthClient) error {
			want := sampleForm(t, "access_token/access-token-requestbody.txt")
			ts, err := c.Exchange(ctx, want.Get("code"), "", want.Get("redirect_uri"))
			if err == nil && (!ts.Expiry.Equal(now.Add(8*time.Hour)) || !strings.HasPrefix(ts.AccessToken, "eyJ") || ts.RefreshToken != "") {
				t.Errorf("exchange gave %v", ts)
			}
			return err
		}, DefaultTokenPath, sampleForm(t, "access_token/access-token-requestbody.txt")},
		{"refresh", refreshReply, func(c *OAuthClient) error {
			ts, err := c.Refresh(ctx, sampleForm(t, "refresh_token/refresh-token-requestbody.txt").Get("refresh_token"))
			if err == nil && (ts.AccessToken != reply.AccessToken || ts.RefreshToken != reply.RefreshToken || !ts.Expiry.Equal(now.Add(28800*time.Second))) {
				t.Errorf("refresh gave %v", ts)
			}
			return err
		}, DefaultTokenPath, sampleForm(t, "refresh_token/refresh-token-requestbody.txt")},
		{"introspect", sample(t, "introspection/validate-token-response.json"), func(c *OAuthClient) error {
			// The sample's exp (2018) is past for "now"; judge it in 2018.
			c.Now = func() time.Time { return time.Unix(1519339110, 0) }
			active, err := c.Introspect(ctx, sampleForm(t, "introspection/validate-token-requestbody.json").Get("assertion"))
			if err == nil && !active {
				t.Error("sample validate answer read as inactive")
			}
			return err
		}, DefaultIntrospectPath, sampleForm(t, "introspection/validate-token-requestbody.json")},
		{"revoke", sample(t, "revocation/revoke-token-response.json"), func(c *OAuthClient) error {
			return c.Revoke(ctx, sampleForm(t, "revocation/revoke-token-requestbody.json").Get("assertion"), "")
		}, DefaultRevokePath, sampleForm(t, "revocation/revoke-token-requestbody.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, http.StatusOK, tt.respBody)
			if err := tt.call(rec.client(now)); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.path != tt.path {
				t.Errorf("path %q, want %q", rec.path, tt.path)
			}
			if got := rec.header.Get("Authorization"); got != sampleAuthorization {
				t.Errorf("Authorization %q, want IR's sample %q", got, sampleAuthorization)
			}
			if got := rec.header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", got)
			}
			if rec.form.Encode() != tt.want.Encode() {
				t.Errorf("form\n got %s\nwant %s", rec.form.Encode(), tt.want.Encode())
			}
		})
	}
}

func TestOAuthAuthCodeURLAndPKCE(t *testing.T) {
	t.Parallel()
	c := &OAuthClient{BaseURL: "https://services.ird.govt.nz/", ClientID: "Test30206492", ClientSecret: "x"}
	// RFC 7636 appendix B.
	if got := pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("S256 challenge %q", got)
	}
	v1, c1 := c.NewPKCE()
	v2, _ := c.NewPKCE()
	if len(v1) != 43 || v1 == v2 || c1 != pkceChallenge(v1) {
		t.Errorf("NewPKCE: %d chars, distinct %v", len(v1), v1 != v2)
	}
	u, err := url.Parse(c.AuthCodeURL("st-1", c1, "https://myreturnuri/test/"))
	must(t, err)
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != "https://services.ird.govt.nz/gateway3/oauth/authorize" ||
		q.Get("response_type") != "code" || q.Get("client_id") != "Test30206492" || q.Get("scope") != "MYIR.Services" ||
		q.Get("state") != "st-1" || q.Get("redirect_uri") != "https://myreturnuri/test/" ||
		q.Get("code_challenge") != c1 || q.Get("code_challenge_method") != "S256" {
		t.Errorf("AuthCodeURL = %s", u)
	}
	if u, _ := url.Parse(c.AuthCodeURL("s", "", "https://r/")); u.Query().Has("code_challenge_method") {
		t.Error("PKCE method sent without a challenge")
	}
}

func TestOAuthExchangeWithPKCE(t *testing.T) {
	t.Parallel()
	f := newFakeOAuth(t)
	c := f.client()
	verifier, challenge := c.NewPKCE()
	f.mu.Lock()
	f.codes["code-1"], f.codes["code-2"] = challenge, challenge
	f.mu.Unlock()
	ts, err := c.Exchange(context.Background(), "code-1", verifier, "https://r/")
	if err != nil || ts.AccessToken == "" || ts.RefreshToken == "" {
		t.Fatalf("Exchange: %v", err)
	}
	_, err = c.Exchange(context.Background(), "code-2", "wrong-verifier", "https://r/")
	if !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("wrong verifier: %v", err)
	}
	// The fake's revoke deletes; a second revoke of the same token is still fine.
	must(t, c.Revoke(context.Background(), ts.AccessToken, "access_token"))
	must(t, c.Revoke(context.Background(), ts.AccessToken, "access_token"))
	if active, err := c.Introspect(context.Background(), ts.AccessToken); err != nil || active {
		t.Errorf("revoked token: active %v, %v", active, err)
	}
}

func TestOAuthTokenAnswers(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const rt = "RT-presented-s3cr3t-0123456789abcdef"
	tests := []struct {
		name       string
		status     int
		body       string
		wantExpiry time.Duration // when it succeeds
		is         error         // when it fails
		temporary  bool
	}{
		{"expires_in number", 200, `{"access_token":"a","refresh_token":"b","token_type":"Bearer","expires_in":28800}`, 8 * time.Hour, nil, false},
		{"expires_in string", 200, `{"access_token":"a","refresh_token":"b","token_type":"Bearer","expires_in":"28800"}`, 8 * time.Hour, nil, false},
		{"expires_in padded string", 200, `{"access_token":"a","token_type":"bearer","expires_in":" 3600 "}`, time.Hour, nil, false},
		{"expires_in fraction", 200, `{"access_token":"a","expires_in":60.9}`, time.Minute, nil, false},
		{"expires_in missing", 200, `{"access_token":"a"}`, defaultExpiresIn, nil, false},
		{"expires_in garbage", 200, `{"access_token":"a","expires_in":"soon"}`, defaultExpiresIn, nil, false},
		{"expires_in negative", 200, `{"access_token":"a","expires_in":-5}`, defaultExpiresIn, nil, false},
		{"no access token", 200, `{"refresh_token":"b","expires_in":1}`, 0, ErrOAuthTransient, true},
		{"not JSON", 200, `<html>hello</html>`, 0, ErrOAuthTransient, true},
		{"wrong token type", 200, `{"access_token":"a","token_type":"MAC"}`, 0, ErrOAuthTransient, true},
		{"invalid_grant (IR's sample)", 400, sample(t, "error-response.json"), 0, ErrInvalidGrant, false},
		{"invalid_grant echoing the token", 400, `{"error":"invalid_grant","error_description":"token ` + rt + ` reused"}`, 0, ErrInvalidGrant, false},
		{"invalid_client", 401, `{"error":"invalid_client","error_description":"Client authentication failed"}`, 0, ErrOAuthRejected, false},
		{"invalid_request", 400, `{"error":"invalid_request"}`, 0, ErrOAuthRejected, false},
		{"4xx from a proxy", 404, `<html>not found</html>`, 0, ErrOAuthTransient, true},
		{"throttled", 429, ``, 0, ErrOAuthTransient, true},
		{"unavailable", 503, `{"error":"temporarily_unavailable"}`, 0, ErrOAuthTransient, true},
		{"too long", 200, `{"access_token":"` + strings.Repeat("a", maxOAuthResponse) + `"}`, 0, ErrOAuthTransient, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, tt.status, tt.body)
			ts, err := rec.client(now).Refresh(context.Background(), rt)
			if tt.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := ts.Expiry.Sub(now); got != tt.wantExpiry {
					t.Errorf("expiry in %s, want %s", got, tt.wantExpiry)
				}
				return
			}
			var oe *OAuthError
			if !errors.Is(err, tt.is) || !errors.As(err, &oe) || oe.Temporary() != tt.temporary {
				t.Fatalf("err = %v, want %v (temporary %v)", err, tt.is, tt.temporary)
			}
			if oe.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus %d", oe.HTTPStatus)
			}
			if strings.HasPrefix(tt.name, "invalid_grant (IR's sample)") && oe.Description != "Invalid Grant: grant_type=refresh_token" {
				t.Errorf("IR's description lost: %q", oe.Description)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error carries a token: %v", err)
			}
		})
	}
}

func TestOAuthTransportFailures(t *testing.T) {
	t.Parallel()
	const rt = "RT-s3cr3t-transport"

	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		block := make(chan struct{})
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(block) })
		c := &OAuthClient{BaseURL: srv.URL, ClientID: "id", ClientSecret: "s", HTTPClient: srv.Client()}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Refresh(ctx, rt)
		var oe *OAuthError
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &oe) || !oe.Temporary() {
			t.Fatalf("err = %v, want a temporary error wrapping DeadlineExceeded", err)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		c := &OAuthClient{BaseURL: srv.URL, ClientID: "id", ClientSecret: "s", HTTPClient: srv.Client()}
		srv.Close()
		_, err := c.Refresh(context.Background(), rt)
		if !errors.Is(err, ErrOAuthTransient) || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		srv.StartTLS()
		t.Cleanup(srv.Close)
		c := &OAuthClient{BaseURL: srv.URL, ClientID: "id", ClientSecret: "s"} // system roots
		if _, err := c.Refresh(context.Background(), rt); !errors.Is(err, ErrOAuthTransient) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestOAuthIntrospectAndRevokeAnswers(t *testing.T) {
	t.Parallel()
	now := time.Unix(1519339110, 0)
	tests := []struct {
		name    string
		status  int
		body    string
		active  bool
		wantErr error
	}{
		{"IR's sample", 200, sample(t, "introspection/validate-token-response.json"), true, nil},
		{"unsuccessful", 200, `{"successful":false}`, false, nil},
		{"expired per exp", 200, `{"successful":true,"oracle_token_attrs_retrieval":{"exp":1519339000}}`, false, nil},
		{"exp as string", 200, `{"successful":true,"oracle_token_attrs_retrieval":{"exp":"1519367910"}}`, true, nil},
		{"invalid_grant", 400, `{"error":"invalid_grant","error_description":"Invalid token."}`, false, nil},
		{"invalid_token", 401, `{"error":"invalid_token"}`, false, nil},
		{"IR's error sample (invalid_scope)", 400, sample(t, "introspection/validate-token-error-response.json"), false, ErrOAuthRejected},
		{"no verdict", 200, `{}`, false, ErrOAuthTransient},
		{"unavailable", 502, ``, false, ErrOAuthTransient},
	}
	for _, tt := range tests {
		t.Run("introspect "+tt.name, func(t *testing.T) {
			t.Parallel()
			active, err := newRecorder(t, tt.status, tt.body).client(now).Introspect(context.Background(), "tok")
			if active != tt.active || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Introspect = %v, %v; want %v, %v", active, err, tt.active, tt.wantErr)
			}
		})
	}
	revokes := []struct {
		name    string
		status  int
		body    string
		wantErr error
	}{
		{"IR's sample (curly quotes)", 200, sample(t, "revocation/revoke-token-response.json"), nil},
		{"already invalid (IR's sample)", 400, `{"error":"invalid_grant","error_description":"Cannot terminate invalid token."}`, nil},
		{"bad action", 400, `{"error":"invalid_request","error_description":"Invalid token action: deleted"}`, ErrOAuthRejected},
		{"unsuccessful", 200, `{"successful":false}`, ErrOAuthRejected},
		{"unavailable", 503, ``, ErrOAuthTransient},
	}
	for _, tt := range revokes {
		t.Run("revoke "+tt.name, func(t *testing.T) {
			t.Parallel()
			err := newRecorder(t, tt.status, tt.body).client(now).Revoke(context.Background(), "tok", "")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Revoke = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestOAuthClientValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    OAuthClient
		want string
	}{
		{"ok", OAuthClient{BaseURL: "https://h", ClientID: "a", ClientSecret: "b"}, ""},
		{"no base", OAuthClient{ClientID: "a", ClientSecret: "b"}, "BaseURL: required"},
		{"bad base", OAuthClient{BaseURL: "h:443", ClientID: "a", ClientSecret: "b"}, "BaseURL"},
		{"no client", OAuthClient{BaseURL: "https://h"}, "ClientID: required"},
		{"bad path", OAuthClient{BaseURL: "https://h", ClientID: "a", ClientSecret: "b", TokenPath: "token"}, "TokenPath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
			if err != nil && tt.c.ClientSecret != "" && strings.Contains(err.Error(), tt.c.ClientSecret+"\"") {
				t.Errorf("secret in %v", err)
			}
		})
	}
}

func TestTokenSetRenew(t *testing.T) {
	t.Parallel()
	old := sampleSet("u")
	exp := old.Expiry.Add(8 * time.Hour)
	got := old.Renew(TokenSet{AccessToken: "new-at", RefreshToken: "new-rt", Expiry: exp})
	if got.ID != old.ID || got.User != old.User || got.Endpoint != old.Endpoint || !got.ConsentedAt.Equal(old.ConsentedAt) ||
		got.Scope != old.Scope || got.AccessToken != "new-at" || got.RefreshToken != "new-rt" || !got.Expiry.Equal(exp) {
		t.Errorf("Renew = %v", got)
	}
	if got := old.Renew(TokenSet{AccessToken: "new-at", Scope: "X"}); got.RefreshToken != old.RefreshToken || got.Scope != "X" {
		t.Errorf("Renew without a new refresh token = %v", got)
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(sample(f, "refresh_token/refresh-token-reply.json")))
	f.Add([]byte(sample(f, "access_token/access-token-response.txt")))
	f.Add([]byte(sample(f, "access_token/access-token-refresh-token-response.json"))) // IR's sample is not valid JSON
	f.Add([]byte(`{"access_token":"a","expires_in":"28800"}`))
	f.Add([]byte(`{"access_token":"a","expires_in":1e400}`))
	f.Add([]byte(`{"access_token":"a","expires_in":{"x":1}}`))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := parseTokenResponse(body, now)
		if err != nil {
			return
		}
		if ts.AccessToken == "" || !ts.Expiry.After(now) || ts.Expiry.After(now.Add(maxExpiresIn)) {
			t.Errorf("accepted %q as %v", body, ts)
		}
	})
}

func FuzzParseIntrospection(f *testing.F) {
	f.Add([]byte(sample(f, "introspection/validate-token-response.json")))
	f.Add([]byte(sample(f, "introspection/validate-token-error-response.json")))
	f.Add([]byte(`{"successful":true,"oracle_token_attrs_retrieval":{"exp":"NaN"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = parseIntrospection(body, time.Unix(1_800_000_000, 0))
	})
}

func FuzzOAuthErrorAnswer(f *testing.F) {
	f.Add(400, []byte(sample(f, "error-response.json")))
	f.Add(400, []byte(sample(f, "revocation/revoke-token-error-response.json")))
	f.Add(401, []byte(`{"error":"invalid_client","error_description":"SECRETTOKEN-0123456789abcdefghijkl"}`))
	f.Add(500, []byte(`{"error":"\u0000bad","error_description":"`+strings.Repeat("é", 300)+`"}`))
	const secret = "SECRETTOKEN-0123456789abcdefghijkl"
	c := &OAuthClient{}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := c.statusError("refresh", status, body, secret)
		msg := e.Error()
		if strings.Contains(msg, secret) || len(e.Description) > 203 || !oauthCodePattern.MatchString(e.Code) && e.Code != "" {
			t.Errorf("statusError(%d, %q) = %q", status, body, msg)
		}
		if e.Err == nil {
			t.Error("unclassified")
		}
	})
}
