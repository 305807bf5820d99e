package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test client below is the tests' own, written from RFC 6749 and IR's
// samples, not gatewayq's: a mistake there must not be mirrored here.

const (
	pathDesktopReturns = "/gateway2/gws/returns/"
	testRedirect       = "https://dsp.example/callback"
	// IR's samples authenticate as Test30206492 (their Basic header).
	irSampleClientID     = "Test30206492"
	irSampleClientSecret = "Oauth2IRSecrett"
)

// testClients are registered in every OAuth test's sandbox.
func testClients() []OAuthClient {
	return []OAuthClient{
		{ID: "cloud-app", Secret: "cloud-secret", RedirectURIs: []string{testRedirect, "https://dsp.example/other"}},
		{ID: "desktop-app", Secret: "desktop-secret", RedirectURIs: []string{testRedirect}, Desktop: true},
		{ID: "stringy-app", Secret: "stringy-secret", RedirectURIs: []string{testRedirect}, ExpiresInAsString: true},
		{ID: irSampleClientID, Secret: irSampleClientSecret, RedirectURIs: []string{"https://myreturnuri/test/"}},
	}
}

func newOAuthHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.OAuthClients == nil {
		opts.OAuthClients = testClients()
	}
	return newHarness(t, opts)
}

// tester plays one registered client against the desktop listener.
type tester struct {
	h          *harness
	id, secret string
	noFollow   *http.Client
	redirect   string
}

func (h *harness) client(id, secret string) *tester {
	return &tester{h: h, id: id, secret: secret, redirect: testRedirect, noFollow: &http.Client{
		Transport:     h.desktop.Transport,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *tester) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.id+":"+c.secret))
}

// authorize GETs the authorize endpoint without following the redirect.
func (c *tester) authorize(t *testing.T, q url.Values) (status int, loc *url.URL, body string) {
	t.Helper()
	resp, err := c.noFollow.Get(c.h.s.DesktopURL() + OAuthAuthorizePath + "?" + q.Encode())
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if l := resp.Header.Get("Location"); l != "" {
		if loc, err = url.Parse(l); err != nil {
			t.Fatalf("Location %q: %v", l, err)
		}
	}
	return resp.StatusCode, loc, string(b)
}

// authQuery is a good authorization request for user with PKCE S256 of
// verifier ("" for none).
func (c *tester) authQuery(user, verifier string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect},
		"scope": {ScopeMYIR}, "state": {"st-123"}}
	if user != "" {
		q.Set("login_hint", user)
	}
	if verifier != "" {
		sum := sha256.Sum256([]byte(verifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
	}
	return q
}

// code runs the authorize step and returns the code from the redirect.
func (c *tester) code(t *testing.T, user, verifier string) string {
	t.Helper()
	status, loc, body := c.authorize(t, c.authQuery(user, verifier))
	if status != http.StatusFound || loc == nil {
		t.Fatalf("authorize: HTTP %d, Location %v: %s", status, loc, body)
	}
	q := loc.Query()
	if q.Get("state") != "st-123" || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("redirect %s: want code and state", loc.Redacted())
	}
	return q.Get("code")
}

// tokenAnswer is a token endpoint answer as the tests read it.
type tokenAnswer struct {
	HTTP   int
	Header http.Header
	Raw    []byte
	JSON   map[string]json.RawMessage
}

func (a tokenAnswer) str(k string) string {
	var s string
	_ = json.Unmarshal(a.JSON[k], &s)
	return s
}

func (c *tester) postAs(t *testing.T, path, auth, contentType, form string) tokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.h.s.DesktopURL()+path, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.noFollow.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := tokenAnswer{HTTP: resp.StatusCode, Header: resp.Header, Raw: b}
	if err := json.Unmarshal(b, &a.JSON); err != nil {
		t.Fatalf("POST %s: HTTP %d, not JSON: %s", path, resp.StatusCode, b)
	}
	return a
}

func (c *tester) post(t *testing.T, path string, form url.Values) tokenAnswer {
	t.Helper()
	return c.postAs(t, path, c.basic(), "application/x-www-form-urlencoded", form.Encode())
}

func (c *tester) redeem(t *testing.T, code, verifier string) tokenAnswer {
	t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return c.post(t, OAuthTokenPath, f)
}

func (c *tester) refresh(t *testing.T, rt string) tokenAnswer {
	t.Helper()
	return c.post(t, OAuthTokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// login runs the whole flow for user and returns the first tokens.
func (c *tester) login(t *testing.T, user string) tokenAnswer {
	t.Helper()
	v := "verifier-" + strings.Repeat("x", 40) + user
	a := c.redeem(t, c.code(t, user, v), v)
	if a.HTTP != http.StatusOK {
		t.Fatalf("redeem: HTTP %d %s", a.HTTP, a.Raw)
	}
	return a
}

// wantError checks an OAuth error answer.
func wantError(t *testing.T, a tokenAnswer, status int, code string) {
	t.Helper()
	if a.HTTP != status || a.str("error") != code {
		t.Errorf("HTTP %d %s, want %d error %q", a.HTTP, a.Raw, status, code)
	}
	if a.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", a.Header.Get("Cache-Control"))
	}
}

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 appendix B

// fileWith files a GST return on the desktop listener with an access token
// and returns the statusCode.
func (h *harness) fileWith(t *testing.T, tok, sample string) int {
	t.Helper()
	a := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+pathDesktopReturns, "application/soap+xml; charset=utf-8",
		"Bearer "+tok, gstSample(t, sample))
	return a.StatusCode
}

func TestOAuthAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	code := c.code(t, "alice", verifier)
	a := c.redeem(t, code, verifier)
	if a.HTTP != http.StatusOK {
		t.Fatalf("redeem: HTTP %d %s", a.HTTP, a.Raw)
	}
	// IR's shape: expires_in a number (28800), token_type Bearer, both tokens.
	if string(a.JSON["expires_in"]) != "28800" || a.str("token_type") != "Bearer" ||
		a.str("access_token") == "" || a.str("refresh_token") == "" {
		t.Errorf("token answer %s", a.Raw)
	}
	if a.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", a.Header)
	}
	if got := h.fileWith(t, a.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusOK {
		t.Errorf("File with the access token: statusCode %d", got)
	}
	// The same access token on the REST Account API.
	rest := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+"/gateway/account/list", "application/json",
		"Bearer "+a.str("access_token"), []byte(`{"CustomerID":"1512100301","CustomerIDType":"CST"}`))
	if rest.HTTP != http.StatusOK {
		t.Errorf("Account list: HTTP %d %s", rest.HTTP, rest.Body)
	}
	st := h.s.Stats()
	if st.OAuthCalls["authorize"] != 1 || st.OAuthCalls["token/authorization_code"] != 1 || st.TokenSetsIssued != 1 {
		t.Errorf("stats %+v %d", st.OAuthCalls, st.TokenSetsIssued)
	}
	// The cloud listener has no OAuth server, like IR's 4046.
	resp := h.do(t, h.cloud, http.MethodPost, h.s.CloudURL()+OAuthTokenPath, "application/x-www-form-urlencoded", c.basic(), nil)
	if resp.HTTP != http.StatusNotFound {
		t.Errorf("token endpoint on the cloud listener: HTTP %d", resp.HTTP)
	}
}

func TestOAuthLoginPage(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{OAuthUsers: []string{"alice", "o'brien <x>"}})
	c := h.client("cloud-app", "cloud-secret")
	status, loc, body := c.authorize(t, c.authQuery("", verifier))
	if status != http.StatusOK || loc != nil {
		t.Fatalf("HTTP %d Location %v", status, loc)
	}
	for _, want := range []string{"login_hint=alice", "o&#39;brien &lt;x&gt;", `name="code_challenge"`, "consent=deny"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<x>") {
		t.Error("user name not escaped")
	}
}

func TestOAuthAuthorizeErrors(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	with := func(k, v string) url.Values {
		q := c.authQuery("alice", verifier)
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	tests := []struct {
		name      string
		q         url.Values
		redirects bool   // error sent to the redirect URI, else a 400 page
		wantErr   string // error= in the redirect
	}{
		{"unknown client", with("client_id", "nobody"), false, ""},
		{"no client", with("client_id", ""), false, ""},
		{"redirect URI not registered", with("redirect_uri", "https://evil.example/callback"), false, ""},
		{"redirect URI differs by a slash", with("redirect_uri", testRedirect+"/"), false, ""},
		{"no redirect URI", with("redirect_uri", ""), false, ""},
		{"parameter twice", func() url.Values { q := c.authQuery("alice", ""); q.Add("scope", ScopeMYIR); return q }(), false, ""},
		{"response_type token", with("response_type", "token"), true, "unsupported_response_type"},
		{"no response_type", with("response_type", ""), true, "invalid_request"},
		{"no scope", with("scope", ""), true, "invalid_scope"},
		{"other scope", with("scope", "openid"), true, "invalid_scope"},
		{"extra scope", with("scope", ScopeMYIR+" admin"), true, "invalid_scope"},
		{"PKCE plain", with("code_challenge_method", "plain"), true, "invalid_request"},
		{"PKCE no method", with("code_challenge_method", ""), true, "invalid_request"},
		{"PKCE method without challenge", with("code_challenge", ""), true, "invalid_request"},
		{"PKCE challenge not a SHA-256", with("code_challenge", "short"), true, "invalid_request"},
		{"user denies", with("consent", "deny"), true, "access_denied"},
		{"control character in login_hint", with("login_hint", "al\x01ice"), true, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, loc, body := c.authorize(t, tt.q)
			if !tt.redirects {
				if status != http.StatusBadRequest || loc != nil || !strings.Contains(body, "invalid_request") {
					t.Errorf("HTTP %d Location %v, want a 400 page: %s", status, loc, body)
				}
				return
			}
			if status != http.StatusFound || loc == nil {
				t.Fatalf("HTTP %d, want a redirect: %s", status, body)
			}
			q := loc.Query()
			if q.Get("error") != tt.wantErr || q.Get("state") != "st-123" || q.Get("code") != "" {
				t.Errorf("redirect query %v, want error %q and the state", q, tt.wantErr)
			}
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
				t.Errorf("redirected to %s", got)
			}
		})
	}
}

func TestOAuthCodeRedemptionErrors(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	other := h.client("stringy-app", "stringy-secret")
	tests := []struct {
		name   string
		redeem func(t *testing.T) tokenAnswer
	}{
		{"wrong verifier", func(t *testing.T) tokenAnswer {
			return c.redeem(t, c.code(t, "alice", verifier), strings.Repeat("a", 43))
		}},
		{"no verifier", func(t *testing.T) tokenAnswer { return c.redeem(t, c.code(t, "alice", verifier), "") }},
		{"malformed verifier", func(t *testing.T) tokenAnswer { return c.redeem(t, c.code(t, "alice", verifier), "short") }},
		{"verifier without a challenge", func(t *testing.T) tokenAnswer { return c.redeem(t, c.code(t, "alice", ""), verifier) }},
		{"redirect URI mismatch", func(t *testing.T) tokenAnswer {
			code := c.code(t, "alice", verifier)
			return c.post(t, OAuthTokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {"https://dsp.example/other"}, "code_verifier": {verifier}})
		}},
		{"no redirect URI", func(t *testing.T) tokenAnswer {
			code := c.code(t, "alice", verifier)
			return c.post(t, OAuthTokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}})
		}},
		{"code of another client", func(t *testing.T) tokenAnswer { return other.redeem(t, c.code(t, "alice", verifier), verifier) }},
		{"unknown code", func(t *testing.T) tokenAnswer { return c.redeem(t, "not-a-code", verifier) }},
		{"wrong verifier then the right one", func(t *testing.T) tokenAnswer {
			code := c.code(t, "alice", verifier)
			c.redeem(t, code, strings.Repeat("b", 43))
			return c.redeem(t, code, verifier) // the code was consumed
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tt.redeem(t)
			wantError(t, a, http.StatusBadRequest, "invalid_grant")
			if a.str("error_description") != "Invalid Grant: grant_type=authorization_code" {
				t.Errorf("description %q", a.str("error_description"))
			}
		})
	}
}

func TestOAuthCodeReuseKillsItsSet(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	code := c.code(t, "alice", verifier)
	first := c.redeem(t, code, verifier)
	if first.HTTP != http.StatusOK {
		t.Fatalf("redeem: %s", first.Raw)
	}
	wantError(t, c.redeem(t, code, verifier), http.StatusBadRequest, "invalid_grant")
	if got := h.fileWith(t, first.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
		t.Errorf("access token from a replayed code: statusCode %d, want 1", got)
	}
	wantError(t, c.refresh(t, first.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
	if st := h.s.Stats(); st.TokenSetsKilled != 1 {
		t.Errorf("TokenSetsKilled %d", st.TokenSetsKilled)
	}
}

func TestOAuthCodeExpires(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{AuthCodeTTL: time.Minute})
	c := h.client("cloud-app", "cloud-secret")
	live, stale := c.code(t, "alice", verifier), c.code(t, "bob", verifier)
	h.s.Advance(59 * time.Second)
	if a := c.redeem(t, live, verifier); a.HTTP != http.StatusOK {
		t.Errorf("code at 59 s: %s", a.Raw)
	}
	h.s.Advance(time.Second)
	wantError(t, c.redeem(t, stale, verifier), http.StatusBadRequest, "invalid_grant")
}

func TestOAuthClientAuthentication(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	form := func() string {
		return url.Values{"grant_type": {"authorization_code"}, "code": {c.code(t, "alice", "")}, "redirect_uri": {testRedirect}}.Encode()
	}
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	const formCT = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		auth, ct    string
		body        func() string
		status      int
		code        string
		description string
	}{
		{"wrong secret", basic("cloud-app", "nope"), formCT, form, 401, "invalid_client", ""},
		{"unknown client", basic("nobody", "cloud-secret"), formCT, form, 401, "invalid_client", ""},
		{"another client's secret", basic("cloud-app", "desktop-secret"), formCT, form, 401, "invalid_client", ""},
		{"no credentials", "", formCT, form, 401, "invalid_client", ""},
		{"credentials in the form only", "", formCT, func() string { return form() + "&client_id=cloud-app&client_secret=cloud-secret" }, 401, "invalid_client", ""},
		{"Basic and form secret", c.basic(), formCT, func() string { return form() + "&client_secret=cloud-secret" }, 400, "invalid_request", ""},
		{"form client_id differs", c.basic(), formCT, func() string { return form() + "&client_id=desktop-app" }, 400, "invalid_request", ""},
		{"Basic not base64", "Basic %%%", formCT, form, 401, "invalid_client", ""},
		{"Basic without colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("cloud-app")), formCT, form, 401, "invalid_client", ""},
		{"Bearer instead of Basic", "Bearer cloud-secret", formCT, form, 401, "invalid_client", ""},
		{"JSON body", c.basic(), "application/json", func() string { return `{"grant_type":"authorization_code"}` }, 400, "invalid_request", ""},
		{"parameter twice", c.basic(), formCT, func() string { return form() + "&grant_type=authorization_code" }, 400, "invalid_request", ""},
		{"bad escape", c.basic(), formCT, func() string { return "grant_type=%zz" }, 400, "invalid_request", ""},
		{"no grant_type", c.basic(), formCT, func() string { return "code=x" }, 400, "invalid_request", "Missing parameter: grant_type"},
		{"password grant", c.basic(), formCT, func() string { return "grant_type=password&username=a&password=b" }, 400, "unsupported_grant_type", ""},
		{"no code", c.basic(), formCT, func() string { return "grant_type=authorization_code&redirect_uri=" + url.QueryEscape(testRedirect) }, 400, "invalid_request", ""},
		{"no refresh token", c.basic(), formCT, func() string { return "grant_type=refresh_token" }, 400, "invalid_request", ""},
		{"body too large", c.basic(), formCT, func() string { return "grant_type=refresh_token&x=" + strings.Repeat("a", maxOAuthForm) }, 400, "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := c.postAs(t, OAuthTokenPath, tt.auth, tt.ct, tt.body())
			wantError(t, a, tt.status, tt.code)
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate %q", a.Header.Get("WWW-Authenticate"))
			}
			if tt.description != "" && a.str("error_description") != tt.description {
				t.Errorf("description %q", a.str("error_description"))
			}
			if bytes.Contains(a.Raw, []byte("cloud-secret")) {
				t.Error("answer echoes the secret")
			}
		})
	}
	// RFC 6749 §2.3.1: the id and secret are form-urlencoded inside Basic.
	h2 := newOAuthHarness(t, Options{OAuthClients: []OAuthClient{{ID: "app:1", Secret: "p@ss+word/=", RedirectURIs: []string{testRedirect}}}})
	c2 := h2.client("app:1", "p@ss+word/=")
	code := c2.code(t, "alice", "")
	enc := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape("app:1")+":"+url.QueryEscape("p@ss+word/=")))
	a := c2.postAs(t, OAuthTokenPath, enc, formCT, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}}.Encode())
	if a.HTTP != http.StatusOK {
		t.Errorf("url-encoded Basic credentials: %s", a.Raw)
	}
}

func TestOAuthRefreshRotates(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	first := c.login(t, "alice")
	second := c.refresh(t, first.str("refresh_token"))
	if second.HTTP != http.StatusOK {
		t.Fatalf("refresh: %s", second.Raw)
	}
	if second.str("access_token") == first.str("access_token") || second.str("refresh_token") == first.str("refresh_token") ||
		second.str("refresh_token") == "" {
		t.Fatalf("refresh did not rotate: %s", second.Raw)
	}
	third := c.refresh(t, second.str("refresh_token"))
	if third.HTTP != http.StatusOK {
		t.Fatalf("second refresh: %s", third.Raw)
	}
	current := third.str("access_token")
	if got := h.fileWith(t, current, "body-gst-returnprepop-request.xml"); got != StatusOK {
		t.Fatalf("Prepop with the newest access token: statusCode %d", got)
	}

	// The first refresh token comes back: the whole set dies.
	a := c.refresh(t, first.str("refresh_token"))
	wantError(t, a, http.StatusBadRequest, "invalid_grant")
	if a.str("error_description") != "Invalid Grant: grant_type=refresh_token" {
		t.Errorf("description %q", a.str("error_description"))
	}
	for name, tok := range map[string]string{"newest": current, "first": first.str("access_token"), "second": second.str("access_token")} {
		if got := h.fileWith(t, tok, "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
			t.Errorf("File with the %s access token of a killed set: statusCode %d, want 1", name, got)
		}
	}
	rest := h.do(t, h.desktop, http.MethodPost, h.s.DesktopURL()+"/gateway/account/list", "application/json",
		"Bearer "+current, []byte(`{"CustomerID":"1512100301","CustomerIDType":"CST"}`))
	if rest.HTTP != http.StatusUnauthorized || !strings.Contains(string(rest.Body), "EV1020") {
		t.Errorf("REST with a killed token: HTTP %d %s", rest.HTTP, rest.Body)
	}
	wantError(t, c.refresh(t, third.str("refresh_token")), http.StatusBadRequest, "invalid_grant")

	st := h.s.Stats()
	if st.RefreshReuse != 1 || st.TokenSetsKilled != 1 || st.TokenSetsIssued != 1 {
		t.Errorf("RefreshReuse %d TokenSetsKilled %d TokenSetsIssued %d", st.RefreshReuse, st.TokenSetsKilled, st.TokenSetsIssued)
	}
	if got := st.RefreshPresentations[RefreshTokenKey(first.str("refresh_token"))]; got != 2 {
		t.Errorf("first refresh token presented %d times, want 2", got)
	}
	if got := st.RefreshPresentations[RefreshTokenKey(third.str("refresh_token"))]; got != 1 {
		t.Errorf("newest refresh token presented %d times, want 1", got)
	}
	for k := range st.RefreshPresentations {
		for _, tok := range []string{first.str("refresh_token"), second.str("refresh_token"), third.str("refresh_token")} {
			if strings.Contains(tok, k) || strings.Contains(k, tok) {
				t.Error("Stats key is (part of) a token")
			}
		}
	}
	if st.OAuthCalls["token/refresh_token"] != 4 || st.OAuthErrors["invalid_grant"] != 2 {
		t.Errorf("calls %v errors %v", st.OAuthCalls, st.OAuthErrors)
	}
	// Another user's set is untouched.
	other := c.login(t, "bob")
	if a := c.refresh(t, other.str("refresh_token")); a.HTTP != http.StatusOK {
		t.Errorf("bob's refresh: %s", a.Raw)
	}
}

func TestOAuthRefreshRefused(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	stringy := h.client("stringy-app", "stringy-secret")
	tests := []struct {
		name   string
		run    func(t *testing.T, rt string) tokenAnswer
		code   string
		killed bool // the set dies
	}{
		{"unknown token", func(t *testing.T, _ string) tokenAnswer { return c.refresh(t, "not-a-refresh-token") }, "invalid_grant", false},
		{"an access token", func(t *testing.T, _ string) tokenAnswer { return c.refresh(t, c.login(t, "x").str("access_token")) }, "invalid_grant", false},
		{"another client", func(t *testing.T, rt string) tokenAnswer { return stringy.refresh(t, rt) }, "invalid_grant", false},
		{"wider scope", func(t *testing.T, rt string) tokenAnswer {
			return c.post(t, OAuthTokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {ScopeMYIR + " admin"}})
		}, "invalid_scope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := c.login(t, "alice").str("refresh_token")
			wantError(t, tt.run(t, rt), http.StatusBadRequest, tt.code)
			// Refused without being used up: the owner can still refresh.
			if a := c.refresh(t, rt); a.HTTP != http.StatusOK {
				t.Errorf("owner's refresh afterwards: %s", a.Raw)
			}
		})
	}
	t.Run("same scope named", func(t *testing.T) {
		t.Parallel()
		rt := c.login(t, "alice").str("refresh_token")
		a := c.post(t, OAuthTokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {ScopeMYIR}})
		if a.HTTP != http.StatusOK {
			t.Errorf("refresh naming the granted scope: %s", a.Raw)
		}
	})
}

func TestOAuthDesktopClientGetsNoRefreshToken(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("desktop-app", "desktop-secret")
	a := c.login(t, "alice")
	if _, ok := a.JSON["refresh_token"]; ok {
		t.Errorf("desktop client got a refresh token: %s", a.Raw)
	}
	if got := h.fileWith(t, a.str("access_token"), "body-gst-returnprepop-request.xml"); got != StatusOK {
		t.Errorf("desktop client's access token: statusCode %d", got)
	}
}

func TestOAuthExpiresInForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     Options
		id, sec  string
		want     string // raw JSON of expires_in
		wantSecs int64
	}{
		{"number", Options{}, "cloud-app", "cloud-secret", `28800`, 28800},
		{"string for one client", Options{}, "stringy-app", "stringy-secret", `"28800"`, 28800},
		{"string for all by option", Options{OAuthExpiresInAsString: true}, "cloud-app", "cloud-secret", `"28800"`, 28800},
		{"configured lifetime", Options{AccessTokenTTL: time.Hour}, "cloud-app", "cloud-secret", `3600`, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newOAuthHarness(t, tt.opts)
			c := h.client(tt.id, tt.sec)
			a := c.login(t, "alice")
			if got := string(a.JSON["expires_in"]); got != tt.want {
				t.Errorf("expires_in %s, want %s", got, tt.want)
			}
			if r := c.refresh(t, a.str("refresh_token")); string(r.JSON["expires_in"]) != tt.want {
				t.Errorf("refresh expires_in %s, want %s", r.JSON["expires_in"], tt.want)
			}
			// The token lives exactly that long.
			h.s.Advance(time.Duration(tt.wantSecs)*time.Second - time.Second)
			if got := h.fileWith(t, a.str("access_token"), "body-gst-returnprepop-request.xml"); got != StatusOK {
				t.Errorf("1 s before expiry: statusCode %d", got)
			}
			h.s.Advance(time.Second)
			if got := h.fileWith(t, a.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
				t.Errorf("at expiry: statusCode %d, want 1", got)
			}
		})
	}
}

func TestOAuthAdvanceExpiresTokens(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	a := c.login(t, "alice")
	minted := h.s.IssueToken("carol", 0)
	start := h.s.Now()
	h.s.Advance(8*time.Hour - time.Second)
	h.s.Advance(-time.Hour) // ignored
	if got := h.s.Now().Sub(start); got != 8*time.Hour-time.Second {
		t.Fatalf("clock moved %s", got)
	}
	if got := h.fileWith(t, a.str("access_token"), "body-gst-returnprepop-request.xml"); got != StatusOK {
		t.Fatalf("before 8 h: statusCode %d", got)
	}
	h.s.Advance(time.Second)
	for name, tok := range map[string]string{"OAuth": a.str("access_token"), "IssueToken": minted} {
		if got := h.fileWith(t, tok, "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
			t.Errorf("%s token after 8 h: statusCode %d, want 1", name, got)
		}
	}
	// The refresh token outlives it and brings a working one.
	r := c.refresh(t, a.str("refresh_token"))
	if r.HTTP != http.StatusOK {
		t.Fatalf("refresh after 8 h: %s", r.Raw)
	}
	if got := h.fileWith(t, r.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusOK {
		t.Errorf("refreshed token: statusCode %d", got)
	}
	// A year later the refresh token has expired too; that is not a reuse.
	h.s.Advance(DefaultRefreshTokenTTL)
	wantError(t, c.refresh(t, r.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
	if st := h.s.Stats(); st.TokenSetsKilled != 0 || st.RefreshReuse != 0 {
		t.Errorf("expiry counted as reuse: %+v", st)
	}
}

func TestOAuthConcurrentRefreshKillsTheSet(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	rt := c.login(t, "alice").str("refresh_token")
	const n = 50
	answers := make([]tokenAnswer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = c.refresh(t, rt)
		})
	}
	close(start)
	wg.Wait()
	var winner tokenAnswer
	won := 0
	for _, a := range answers {
		switch {
		case a.HTTP == http.StatusOK:
			won++
			winner = a
		case a.HTTP != http.StatusBadRequest || a.str("error") != "invalid_grant":
			t.Errorf("answer HTTP %d %s", a.HTTP, a.Raw)
		}
	}
	if won != 1 {
		t.Fatalf("%d refreshes succeeded, want exactly 1", won)
	}
	// The winner's tokens died with the set.
	if got := h.fileWith(t, winner.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
		t.Errorf("winner's access token: statusCode %d, want 1", got)
	}
	wantError(t, c.refresh(t, winner.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
	st := h.s.Stats()
	if st.RefreshPresentations[RefreshTokenKey(rt)] != n || st.RefreshReuse != 1 || st.TokenSetsKilled != 1 {
		t.Errorf("presentations %d reuse %d killed %d", st.RefreshPresentations[RefreshTokenKey(rt)], st.RefreshReuse, st.TokenSetsKilled)
	}
	if st.ConcurrentRefreshes < 1 || st.ConcurrentRefreshes > n {
		t.Errorf("ConcurrentRefreshes %d", st.ConcurrentRefreshes)
	}
}

// oracleForm is IR's validate/delete request body.
func oracleForm(action, token string, extra ...string) string {
	f := "grant_type=" + url.QueryEscape(oracleGrantType) + "&oracle_token_action=" + action + "&assertion=" + token
	return f + strings.Join(extra, "")
}

func TestOAuthIntrospect(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	stringy := h.client("stringy-app", "stringy-secret")
	const formCT = "application/x-www-form-urlencoded"
	a := c.login(t, "alice")
	at, rt := a.str("access_token"), a.str("refresh_token")
	revoked := c.login(t, "dave").str("access_token")
	if r := c.postAs(t, OAuthRevokePath, c.basic(), formCT, oracleForm("delete", revoked)); r.HTTP != http.StatusOK {
		t.Fatalf("revoke: %s", r.Raw)
	}
	minted := h.s.IssueToken("erin", time.Hour)
	exp := h.s.Now().Add(DefaultAccessTokenTTL).Unix()
	attrs := "&scope=MYIR.Services&oracle_token_attrs_retrieval=prn exp"
	tests := []struct {
		name      string
		client    *tester
		path      string
		body      string
		status    int
		wantErr   string
		wantAttrs string // JSON of oracle_token_attrs_retrieval
	}{
		{"access token", c, OAuthIntrospectPath, oracleForm("validate", at, attrs), 200, "", `{"exp":` + itoa(exp) + `,"prn":"alice"}`},
		{"via the token endpoint", c, OAuthTokenPath, oracleForm("validate", at, attrs), 200, "", `{"exp":` + itoa(exp) + `,"prn":"alice"}`},
		{"no attributes asked", c, OAuthIntrospectPath, oracleForm("validate", at, "&scope=MYIR.Services"), 200, "", ``},
		{"refresh token", c, OAuthIntrospectPath, oracleForm("validate", rt, "&scope=MYIR.Services&oracle_token_attrs_retrieval=prn oracle.oauth.tk_context"), 200, "",
			`{"oracle.oauth.tk_context":"refresh_token","prn":"alice"}`},
		{"IssueToken's token", stringy, OAuthIntrospectPath, oracleForm("validate", minted, "&scope=MYIR.Services&oracle_token_attrs_retrieval=prn"), 200, "", `{"prn":"erin"}`},
		{"revoked token", c, OAuthIntrospectPath, oracleForm("validate", revoked, attrs), 400, "invalid_grant", ""},
		{"unknown token", c, OAuthIntrospectPath, oracleForm("validate", "nope", attrs), 400, "invalid_grant", ""},
		{"another client's token", stringy, OAuthIntrospectPath, oracleForm("validate", at, attrs), 400, "invalid_grant", ""},
		{"no scope", c, OAuthIntrospectPath, oracleForm("validate", at), 400, "invalid_scope", ""},
		{"wrong action", c, OAuthIntrospectPath, oracleForm("deleted", at, attrs), 400, "invalid_request", ""},
		{"standard grant type", c, OAuthIntrospectPath, "grant_type=refresh_token&oracle_token_action=validate&scope=MYIR.Services&assertion=" + at, 400, "unsupported_grant_type", ""},
		{"no assertion", c, OAuthIntrospectPath, oracleForm("validate", "", attrs), 400, "invalid_request", ""},
		{"no client credentials", &tester{h: h, noFollow: c.noFollow}, OAuthIntrospectPath, oracleForm("validate", at, attrs), 401, "invalid_client", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			auth := ""
			if tt.client.id != "" {
				auth = tt.client.basic()
			}
			r := tt.client.postAs(t, tt.path, auth, formCT, tt.body)
			if tt.status != 200 {
				wantError(t, r, tt.status, tt.wantErr)
				return
			}
			if r.HTTP != 200 || string(r.JSON["successful"]) != "true" || string(r.JSON["oracle_token_attrs_retrieval"]) != tt.wantAttrs {
				t.Errorf("HTTP %d %s, want attrs %s", r.HTTP, r.Raw, tt.wantAttrs)
			}
		})
	}
	t.Run("IR's wording for a wrong action", func(t *testing.T) {
		t.Parallel()
		r := c.postAs(t, OAuthRevokePath, c.basic(), formCT, oracleForm("deleted", rt))
		if r.str("error_description") != "Invalid token action: deleted" {
			t.Errorf("answer %s", r.Raw)
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestOAuthRevoke(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	stringy := h.client("stringy-app", "stringy-secret")
	const formCT = "application/x-www-form-urlencoded"
	revoke := func(t *testing.T, c *tester, path, tok string) tokenAnswer {
		return c.postAs(t, path, c.basic(), formCT, oracleForm("delete", tok))
	}

	t.Run("refresh token takes its set", func(t *testing.T) {
		t.Parallel()
		a := c.login(t, "alice")
		next := c.refresh(t, a.str("refresh_token"))
		r := revoke(t, c, OAuthRevokePath, next.str("refresh_token"))
		if r.HTTP != 200 || string(r.Raw) != "{\"successful\":true}\n" {
			t.Fatalf("revoke: HTTP %d %s", r.HTTP, r.Raw)
		}
		for _, tok := range []string{a.str("access_token"), next.str("access_token")} {
			if got := h.fileWith(t, tok, "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
				t.Errorf("access token of a revoked set: statusCode %d", got)
			}
		}
		wantError(t, c.refresh(t, next.str("refresh_token")), 400, "invalid_grant")
		again := revoke(t, c, OAuthRevokePath, next.str("refresh_token"))
		wantError(t, again, 400, "invalid_grant")
		if again.str("error_description") != "Cannot terminate invalid token." {
			t.Errorf("description %q", again.str("error_description"))
		}
	})
	t.Run("access token alone", func(t *testing.T) {
		t.Parallel()
		a := c.login(t, "bob")
		if r := revoke(t, c, OAuthTokenPath, a.str("access_token")); r.HTTP != 200 {
			t.Fatalf("revoke via the token endpoint: %s", r.Raw)
		}
		if got := h.fileWith(t, a.str("access_token"), "body-gst-returnfile-request-GST101A.xml"); got != StatusAuthFailed {
			t.Errorf("revoked access token: statusCode %d", got)
		}
		if r := c.refresh(t, a.str("refresh_token")); r.HTTP != 200 {
			t.Errorf("refresh after revoking the access token only: %s", r.Raw)
		}
	})
	t.Run("another client's token", func(t *testing.T) {
		t.Parallel()
		a := c.login(t, "carol")
		wantError(t, revoke(t, stringy, OAuthRevokePath, a.str("refresh_token")), 400, "invalid_grant")
		if r := c.refresh(t, a.str("refresh_token")); r.HTTP != 200 {
			t.Errorf("refresh after a refused revoke: %s", r.Raw)
		}
	})
	t.Cleanup(func() {
		if st := h.s.Stats(); st.TokenSetsRevoked != 1 || st.TokenSetsKilled != 0 {
			t.Errorf("TokenSetsRevoked %d TokenSetsKilled %d", st.TokenSetsRevoked, st.TokenSetsKilled)
		}
	})
}

// TestOAuthIRSamples sends IR's sample requests as they are (header and
// body) and compares the answers with IR's sample answers.
func TestOAuthIRSamples(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	dir := filepath.Join(testdata, "oauth")
	sampleAuth := "Basic VGVzdDMwMjA2NDkyOk9hdXRoMklSU2VjcmV0dA==" // from *-requestheader.json
	if !strings.Contains(string(readFile(t, filepath.Join(dir, "refresh_token", "refresh-token-requestheader.json"))), strings.TrimPrefix(sampleAuth, "Basic ")) {
		t.Fatal("sample header changed")
	}
	c := h.client(irSampleClientID, irSampleClientSecret)
	c.redirect = "https://myreturnuri/test/"
	const formCT = "application/x-www-form-urlencoded"
	jsonOf := func(t *testing.T, b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return m
	}
	tests := []struct {
		name, path, body string
		want             []byte // IR's answer
	}{
		// IR's tokens are not the sandbox's, so each is refused, in IR's words.
		{"refresh", OAuthTokenPath, string(readFile(t, filepath.Join(dir, "refresh_token", "refresh-token-requestbody.txt"))),
			readFile(t, filepath.Join(dir, "error-response.json"))},
		{"revoke", OAuthRevokePath, string(readFile(t, filepath.Join(dir, "revocation", "revoke-token-requestbody.json"))),
			[]byte(`{"error":"invalid_grant","error_description":"Cannot terminate invalid token."}`)},
		{"code", OAuthTokenPath, string(readFile(t, filepath.Join(dir, "access_token", "access-token-requestbody.txt"))),
			[]byte(`{"error":"invalid_grant","error_description":"Invalid Grant: grant_type=authorization_code"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := c.postAs(t, tt.path, sampleAuth, formCT, strings.TrimSpace(tt.body))
			got, want := jsonOf(t, r.Raw), jsonOf(t, tt.want)
			if r.HTTP != 400 || got["error"] != want["error"] || got["error_description"] != want["error_description"] {
				t.Errorf("HTTP %d %s, want %s", r.HTTP, r.Raw, tt.want)
			}
		})
	}
	// IR's samples with the sandbox's own tokens substituted: the shapes
	// IR documents are accepted and answered in IR's shape.
	t.Run("validate and revoke with sandbox tokens", func(t *testing.T) {
		t.Parallel()
		a := c.login(t, "Client008")
		validate := string(readFile(t, filepath.Join(dir, "introspection", "validate-token-requestbody.json")))
		validate = sampleWithAssertion(t, validate, a.str("access_token"))
		r := c.postAs(t, OAuthIntrospectPath, sampleAuth, formCT, validate)
		want := jsonOf(t, readFile(t, filepath.Join(dir, "introspection", "validate-token-response.json")))
		got := jsonOf(t, r.Raw)
		gotAttrs, _ := got["oracle_token_attrs_retrieval"].(map[string]any)
		wantAttrs, _ := want["oracle_token_attrs_retrieval"].(map[string]any)
		if r.HTTP != 200 || got["successful"] != true || gotAttrs["prn"] != wantAttrs["prn"] || gotAttrs["exp"] == nil {
			t.Errorf("validate: HTTP %d %s, want the shape of %v", r.HTTP, r.Raw, want)
		}
		revoke := string(readFile(t, filepath.Join(dir, "revocation", "revoke-token-requestbody.json")))
		r = c.postAs(t, OAuthRevokePath, sampleAuth, formCT, sampleWithAssertion(t, revoke, a.str("refresh_token")))
		if r.HTTP != 200 || jsonOf(t, r.Raw)["successful"] != true {
			t.Errorf("revoke: HTTP %d %s", r.HTTP, r.Raw)
		}
		refresh := string(readFile(t, filepath.Join(dir, "refresh_token", "refresh-token-requestbody.txt")))
		_, old, _ := strings.Cut(refresh, "refresh_token=")
		r = c.postAs(t, OAuthTokenPath, sampleAuth, formCT, strings.Replace(refresh, strings.TrimSpace(old), a.str("refresh_token"), 1))
		wantError(t, r, 400, "invalid_grant") // revoked just above
	})
}

// sampleWithAssertion puts tok in place of the sample's assertion.
func sampleWithAssertion(t *testing.T, body, tok string) string {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(body), "&")
	found := false
	for i, p := range parts {
		if strings.HasPrefix(p, "assertion=") {
			parts[i], found = "assertion="+tok, true
		}
	}
	if !found {
		t.Fatal("sample has no assertion")
	}
	return strings.Join(parts, "&")
}

func TestOAuthOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string // in the error; "" = valid
	}{
		{"default", Options{}, ""},
		{"no client id", Options{OAuthClients: []OAuthClient{{RedirectURIs: []string{testRedirect}}}}, "OAuthClients[0].ID"},
		{"duplicate id", Options{OAuthClients: []OAuthClient{{ID: "a", RedirectURIs: []string{testRedirect}}, {ID: "a", RedirectURIs: []string{testRedirect}}}}, "registered twice"},
		{"no redirect URI", Options{OAuthClients: []OAuthClient{{ID: "a"}}}, "RedirectURIs"},
		{"relative redirect URI", Options{OAuthClients: []OAuthClient{{ID: "a", RedirectURIs: []string{"/callback"}}}}, "absolute"},
		{"fragment", Options{OAuthClients: []OAuthClient{{ID: "a", RedirectURIs: []string{testRedirect + "#x"}}}}, "fragment"},
		{"negative TTL", Options{RefreshTokenTTL: -time.Second}, "RefreshTokenTTL"},
		{"bad user", Options{OAuthUsers: []string{"ok", " "}}, "OAuthUsers[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				cs := s.OAuthClients()
				if len(cs) != 1 || cs[0].ID != DefaultOAuthClientID || len(cs[0].Secret) < 40 || cs[0].RedirectURIs[0] != DefaultOAuthRedirectURI {
					t.Errorf("default clients %+v", cs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// Faults.LoseRefresh: the refresh is honoured (its token spent, a new set
// issued) and the answer never arrives; presenting the token again is then
// a reuse, which kills the set, as at IR.
func TestOAuthLostRefresh(t *testing.T) {
	t.Parallel()
	h := newOAuthHarness(t, Options{})
	c := h.client("cloud-app", "cloud-secret")
	first := c.login(t, "alice")
	rt := first.str("refresh_token")
	if err := h.s.SetFaults(Faults{LoseRefresh: 1}); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.s.DesktopURL()+OAuthTokenPath,
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", c.basic())
	if resp, err := c.noFollow.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a lost refresh answered HTTP %d", resp.StatusCode)
	}
	st := h.s.Stats()
	if st.RefreshesLost != 1 || st.RefreshPresentations[RefreshTokenKey(rt)] != 1 || st.TokenSetsKilled != 0 {
		t.Fatalf("after the lost refresh: lost %d, presentations %d, killed %d; want 1, 1, 0",
			st.RefreshesLost, st.RefreshPresentations[RefreshTokenKey(rt)], st.TokenSetsKilled)
	}
	if err := h.s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	wantError(t, c.refresh(t, rt), http.StatusBadRequest, "invalid_grant")
	if st := h.s.Stats(); st.RefreshReuse != 1 || st.TokenSetsKilled != 1 {
		t.Errorf("the spent token presented again: reuse %d, killed %d; want 1, 1", st.RefreshReuse, st.TokenSetsKilled)
	}
}
