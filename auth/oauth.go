package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IR's OAuth endpoint paths on the one-way TLS listener.
const (
	DefaultAuthorizePath  = "/gateway3/oauth/authorize"
	DefaultTokenPath      = "/gateway3/oauth/token"
	DefaultIntrospectPath = "/gateway3/oauth/introspect"
	DefaultRevokePath     = "/gateway3/oauth/revoke"
)

// Scope is the one scope IR's gateway services accept.
const Scope = "MYIR.Services"

// oracleTokenGrant is the grant type IR's (Oracle Access Manager) server
// takes for validating and deleting a token, with the token as "assertion".
const oracleTokenGrant = "oracle-idm:/oauth/grant-type/resource-access-token/jwt"

// maxOAuthResponse bounds how much of an OAuth answer is read: IR's are
// under 2 KiB; anything near this is not an OAuth answer.
const maxOAuthResponse = 64 << 10

// defaultExpiresIn is assumed when a successful token answer carries no
// usable expires_in. Refusing the answer instead would lose the rotated
// refresh token IR has just issued, and with it the whole set; a short
// assumed lifetime only costs an early refresh.
const defaultExpiresIn = time.Hour

// Errors of the OAuth client. Each is wrapped in an *OAuthError.
var (
	// ErrInvalidGrant: IR refused the grant (refresh token or code)
	// with "invalid_grant": used, revoked, consent expired, or reuse
	// detected. The token set cannot be refreshed; the user must consent again.
	ErrInvalidGrant = errors.New("invalid_grant: the grant is revoked, expired or already used")
	// ErrOAuthTransient: the OAuth server could not be reached or answered
	// 429/5xx or something unreadable; trying later may succeed.
	ErrOAuthTransient = errors.New("oauth server unavailable")
	// ErrOAuthRejected: the OAuth server refused the request for a reason
	// other than the grant (bad client credentials, bad request): a
	// configuration problem, not worth retrying.
	ErrOAuthRejected = errors.New("oauth request rejected")
)

// OAuthError is a failed OAuth call. It never holds a token: the
// description IR sent is kept only after anything token-like is cut out.
type OAuthError struct {
	Op          string // "exchange", "refresh", "introspect", "revoke"
	HTTPStatus  int    // 0 when no answer arrived
	Code        string // the OAuth "error" field, e.g. "invalid_grant"
	Description string // the "error_description", redacted and truncated
	// Err is ErrInvalidGrant, ErrOAuthTransient or ErrOAuthRejected,
	// possibly joined with the network or context error beneath it.
	Err error
}

func (e *OAuthError) Error() string {
	s := "oauth " + e.Op
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += " (" + e.Description + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *OAuthError) Unwrap() error { return e.Err }

// Temporary reports whether the same call may succeed later.
func (e *OAuthError) Temporary() bool { return errors.Is(e.Err, ErrOAuthTransient) }

// OAuthClient talks to IR's OAuth 2.0 authorization-code server: the
// consent URL, the code exchange, refresh, validation ("introspect") and
// revocation, following IR's request and response samples. It is safe for
// concurrent use once configured; set its fields before the first call.
//
// It never puts a token in an error. It does not retry: a refresh token is
// single-use, so whether to present one again is the caller's decision
// (Store.Fresh makes it once for the whole fleet).
type OAuthClient struct {
	// BaseURL is scheme://host[:port] of the OAuth server, no path.
	BaseURL string
	// Endpoint paths; "" means IR's (DefaultTokenPath...).
	AuthorizePath, TokenPath, IntrospectPath, RevokePath string
	// ClientID and ClientSecret, sent as HTTP Basic on every call but the
	// authorize redirect.
	ClientID, ClientSecret string
	// HTTPClient carries the TLS configuration (IR's CA, or the sandbox's).
	// nil means http.DefaultClient. Deadlines come from the context.
	HTTPClient *http.Client
	// Now stamps Expiry from expires_in; nil means time.Now.
	Now func() time.Time
}

// Validate names each problem of c, never the secret.
func (c *OAuthClient) Validate() error {
	var errs []error
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		errs = append(errs, errors.New("BaseURL: required"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs = append(errs, fmt.Errorf("BaseURL: %q is not scheme://host[:port]", c.BaseURL))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("ClientID: required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("ClientSecret: required"))
	}
	for name, p := range map[string]string{"AuthorizePath": c.AuthorizePath, "TokenPath": c.TokenPath, "IntrospectPath": c.IntrospectPath, "RevokePath": c.RevokePath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("%s: %q must start with /", name, p))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("auth: invalid OAuth client: %w", errors.Join(errs...))
}

func (c *OAuthClient) endpoint(p, def string) string {
	if p == "" {
		p = def
	}
	return strings.TrimRight(c.BaseURL, "/") + p
}

func (c *OAuthClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// NewPKCE returns a fresh PKCE code verifier (43 characters, 256 random
// bits) and its S256 challenge. Keep the verifier with the state of the
// consent in progress; send the challenge in AuthCodeURL.
func (c *OAuthClient) NewPKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	return verifier, pkceChallenge(verifier)
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthCodeURL is where the user's browser goes to consent in myIR: an
// authorization-code request for scope MYIR.Services. codeChallenge, when
// not "", adds PKCE with method S256.
func (c *OAuthClient) AuthCodeURL(state, codeChallenge, redirectURI string) string {
	v := url.Values{
		"response_type": {"code"},
		"client_id":     {c.ClientID},
		"redirect_uri":  {redirectURI},
		"scope":         {Scope},
		"state":         {state},
	}
	if codeChallenge != "" {
		v.Set("code_challenge", codeChallenge)
		v.Set("code_challenge_method", "S256")
	}
	return c.endpoint(c.AuthorizePath, DefaultAuthorizePath) + "?" + v.Encode()
}

// Exchange trades an authorization code (and its PKCE verifier, "" when
// none was used) for a token set. The result holds the tokens, Expiry and
// Scope only: the caller names it (ID) and adds User, Endpoint and
// ConsentedAt before Store.Put.
func (c *OAuthClient) Exchange(ctx context.Context, code, verifier, redirectURI string) (TokenSet, error) {
	form := url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {redirectURI},
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return c.token(ctx, "exchange", form, code)
}

// Refresh presents refreshToken once and returns the rotated tokens
// (AccessToken, RefreshToken, Expiry, Scope); merge them into the set they
// came from with TokenSet.Renew. An error wrapping ErrInvalidGrant means the
// set is dead; one wrapping ErrOAuthTransient means the outcome is unknown:
// IR may or may not have consumed the token (see Store.Fresh).
func (c *OAuthClient) Refresh(ctx context.Context, refreshToken string) (TokenSet, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	}
	return c.token(ctx, "refresh", form, refreshToken)
}

// Introspect asks IR whether token (access or refresh) is still valid,
// with IR's "validate" token action. An invalid, used or revoked token is
// (false, nil); an error means the answer is unknown.
func (c *OAuthClient) Introspect(ctx context.Context, token string) (bool, error) {
	form := url.Values{
		"grant_type":                   {oracleTokenGrant},
		"oracle_token_action":          {"validate"},
		"scope":                        {Scope},
		"assertion":                    {token},
		"oracle_token_attrs_retrieval": {"prn exp"},
	}
	status, body, err := c.post(ctx, "introspect", c.endpoint(c.IntrospectPath, DefaultIntrospectPath), form, token)
	if err != nil {
		return false, err
	}
	if status/100 != 2 {
		e := c.statusError("introspect", status, body, token)
		if e.Code == "invalid_grant" || e.Code == "invalid_token" {
			return false, nil
		}
		return false, e
	}
	active, err := parseIntrospection(body, c.now())
	if err != nil {
		return false, &OAuthError{Op: "introspect", HTTPStatus: status, Err: errors.Join(ErrOAuthTransient, err)}
	}
	return active, nil
}

// Revoke deletes token at IR (IR's "delete" token action). hint, when not
// "", is sent as RFC 7009's token_type_hint ("access_token" or
// "refresh_token"); IR's own samples send none. Revoking a token IR
// already considers invalid succeeds: the token is unusable either way.
func (c *OAuthClient) Revoke(ctx context.Context, token string, hint string) error {
	form := url.Values{
		"grant_type":          {oracleTokenGrant},
		"oracle_token_action": {"delete"},
		"assertion":           {token},
	}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	status, body, err := c.post(ctx, "revoke", c.endpoint(c.RevokePath, DefaultRevokePath), form, token)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		e := c.statusError("revoke", status, body, token)
		if e.Code == "invalid_grant" {
			return nil
		}
		return e
	}
	// IR's sample success answer is not even valid JSON ({“successful”:true}):
	// a 2xx is success unless the body clearly says otherwise.
	var r struct {
		Successful *bool `json:"successful"`
	}
	if json.Unmarshal(body, &r) == nil && r.Successful != nil && !*r.Successful {
		return &OAuthError{Op: "revoke", HTTPStatus: status, Err: ErrOAuthRejected}
	}
	return nil
}

func (c *OAuthClient) token(ctx context.Context, op string, form url.Values, secret string) (TokenSet, error) {
	// Expiry counts from before the request: IR's clock starts no earlier.
	start := c.now()
	status, body, err := c.post(ctx, op, c.endpoint(c.TokenPath, DefaultTokenPath), form, secret)
	if err != nil {
		return TokenSet{}, err
	}
	if status/100 != 2 {
		return TokenSet{}, c.statusError(op, status, body, secret)
	}
	ts, err := parseTokenResponse(body, start)
	if err != nil {
		return TokenSet{}, &OAuthError{Op: op, HTTPStatus: status, Err: errors.Join(ErrOAuthTransient, err)}
	}
	return ts, nil
}

// post sends form with HTTP Basic client authentication and returns the
// status and at most maxOAuthResponse bytes of the body. secret is the
// token in the form, kept out of any error.
func (c *OAuthClient) post(ctx context.Context, op, endpoint string, form url.Values, secret string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, &OAuthError{Op: op, Err: errors.Join(ErrOAuthRejected, errors.New("bad endpoint URL"))}
	}
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the URL, which carries no token (the form is
		// the body); the context's error is kept for errors.Is.
		cause := errors.New(redactText(err.Error(), secret))
		if ctxErr := ctx.Err(); ctxErr != nil {
			cause = ctxErr
		}
		return 0, nil, &OAuthError{Op: op, Err: errors.Join(ErrOAuthTransient, cause)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOAuthResponse+1))
	if err != nil {
		return 0, nil, &OAuthError{Op: op, HTTPStatus: resp.StatusCode, Err: errors.Join(ErrOAuthTransient, errors.New("reading the answer failed"))}
	}
	if len(body) > maxOAuthResponse {
		return 0, nil, &OAuthError{Op: op, HTTPStatus: resp.StatusCode, Err: errors.Join(ErrOAuthTransient, fmt.Errorf("answer longer than %d bytes", maxOAuthResponse))}
	}
	return resp.StatusCode, body, nil
}

// statusError classifies a non-2xx answer: invalid_grant is the grant's
// death, 429/5xx (or an unreadable 4xx) transient, anything else a
// rejected request.
func (c *OAuthClient) statusError(op string, status int, body []byte, secret string) *OAuthError {
	var r struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &r)
	e := &OAuthError{Op: op, HTTPStatus: status, Code: sanitizeCode(r.Error), Description: redactText(r.Description, secret)}
	switch {
	case e.Code == "invalid_grant":
		e.Err = ErrInvalidGrant
	case status == http.StatusTooManyRequests || status >= 500:
		e.Err = ErrOAuthTransient
	case e.Code == "" && status != http.StatusUnauthorized && status != http.StatusForbidden:
		// A 4xx that is not an OAuth error answer came from something in
		// the way (a proxy, a maintenance page), not the OAuth server.
		e.Err = ErrOAuthTransient
	default:
		e.Err = ErrOAuthRejected
	}
	return e
}

var oauthCodePattern = regexp.MustCompile(`^[a-z_]{1,64}$`)

func sanitizeCode(code string) string {
	if code == "" || oauthCodePattern.MatchString(code) {
		return code
	}
	return "unrecognised"
}

// tokenLike matches runs that could be a token (JWT segments, base64url):
// an error description IR echoes back is kept only without them.
var tokenLike = regexp.MustCompile(`[A-Za-z0-9_\-+/=.~]{32,}`)

func redactText(s, secret string) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	s = tokenLike.ReplaceAllString(s, "[redacted]")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// lenientNumber is a JSON number, or a string holding one (IR sends
// expires_in both ways). Anything else leaves it unset rather than failing
// the whole answer: see defaultExpiresIn.
type lenientNumber struct {
	v  float64
	ok bool
}

func (n *lenientNumber) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		s = strings.TrimSpace(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		n.v, n.ok = f, true
	}
	return nil
}

// maxExpiresIn bounds a believable expires_in (IR's is 8 h).
const maxExpiresIn = 10 * 366 * 24 * time.Hour

// parseTokenResponse reads a token endpoint's success answer into a
// TokenSet (tokens, Expiry from issued, Scope).
func parseTokenResponse(body []byte, issued time.Time) (TokenSet, error) {
	var r struct {
		AccessToken  string        `json:"access_token"`
		RefreshToken string        `json:"refresh_token"`
		TokenType    string        `json:"token_type"`
		ExpiresIn    lenientNumber `json:"expires_in"`
		Scope        string        `json:"scope"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return TokenSet{}, errors.New("token answer is not a JSON object")
	}
	if r.AccessToken == "" {
		return TokenSet{}, errors.New("token answer has no access_token")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return TokenSet{}, fmt.Errorf("token answer has token_type %q, want Bearer", redactText(r.TokenType, ""))
	}
	life := defaultExpiresIn
	if r.ExpiresIn.ok && r.ExpiresIn.v >= 1 && r.ExpiresIn.v <= maxExpiresIn.Seconds() {
		life = time.Duration(r.ExpiresIn.v) * time.Second
	}
	return TokenSet{
		AccessToken:  r.AccessToken,
		RefreshToken: r.RefreshToken,
		Expiry:       issued.Add(life),
		Scope:        r.Scope,
	}, nil
}

// parseIntrospection reads IR's validate answer:
// {"successful": true, "oracle_token_attrs_retrieval": {"exp": ..., "prn": ...}}.
func parseIntrospection(body []byte, now time.Time) (bool, error) {
	var r struct {
		Successful *bool `json:"successful"`
		Attrs      struct {
			Exp lenientNumber `json:"exp"`
		} `json:"oracle_token_attrs_retrieval"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Successful == nil {
		return false, errors.New("validate answer has no \"successful\"")
	}
	if !*r.Successful {
		return false, nil
	}
	if exp := r.Attrs.Exp; exp.ok && exp.v > 0 && exp.v < 1e12 && !now.Before(time.Unix(int64(exp.v), 0)) {
		return false, nil
	}
	return true, nil
}

// Renew returns t with the tokens of g, a set returned by
// OAuthClient.Refresh: t's ID, User, Endpoint and ConsentedAt stay. A
// refresh answer without a refresh token or scope keeps t's (RFC 6749
// section 6: the old refresh token stays valid when no new one is issued).
func (t TokenSet) Renew(g TokenSet) TokenSet {
	t.AccessToken, t.Expiry = g.AccessToken, g.Expiry
	if g.RefreshToken != "" {
		t.RefreshToken = g.RefreshToken
	}
	if g.Scope != "" {
		t.Scope = g.Scope
	}
	return t
}

// ConsentAs runs the whole authorization-code flow with PKCE as user,
// without a browser, through the gatewayq sandbox's login_hint extension
// (IR has no such thing: there a person logs in to myIR). It is for the
// sandbox only: the demo, the benchmark and tests; `enqueue auth login
// --login-hint` uses it too.
func (c *OAuthClient) ConsentAs(ctx context.Context, user, redirectURI string) (TokenSet, error) {
	verifier, challenge := c.NewPKCE()
	var st [16]byte
	_, _ = rand.Read(st[:])
	state := base64.RawURLEncoding.EncodeToString(st[:])
	u := c.AuthCodeURL(state, challenge, redirectURI) + "&login_hint=" + url.QueryEscape(user)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return TokenSet{}, err
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	// The redirect is read, not followed: its target is the DSP's callback.
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Do(req)
	if err != nil {
		return TokenSet{}, fmt.Errorf("authorize: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		return TokenSet{}, fmt.Errorf("authorize answered HTTP %d without a redirect (is this the sandbox?)", resp.StatusCode)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return TokenSet{}, fmt.Errorf("consent refused: %s %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state || q.Get("code") == "" {
		return TokenSet{}, errors.New("the redirect carries no code for this login")
	}
	return c.Exchange(ctx, q.Get("code"), verifier, redirectURI)
}
