package sandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// The OAuth server's paths, on the desktop (one-way TLS) listener as IR's
// are on port 443.
const (
	OAuthAuthorizePath  = "/gateway3/oauth/authorize"
	OAuthTokenPath      = "/gateway3/oauth/token"
	OAuthIntrospectPath = "/gateway3/oauth/introspect"
	OAuthRevokePath     = "/gateway3/oauth/revoke"
)

// ScopeMYIR is the scope every authorization must request.
const ScopeMYIR = "MYIR.Services"

// Defaults of the OAuth server.
const (
	// DefaultOAuthClientID is the client registered when
	// Options.OAuthClients is empty; its secret is random, see OAuthClients.
	DefaultOAuthClientID = "gatewayq-sandbox"
	// DefaultOAuthRedirectURI is the default client's one redirect URI.
	// With login_hint nothing needs to listen there: the client reads the
	// code from the 302's Location.
	DefaultOAuthRedirectURI = "https://localhost/callback"
	// DefaultAccessTokenTTL and DefaultRefreshTokenTTL are IR's lifetimes
	// ("Manage access tokens for gateway services": 8 hours and 1 year).
	DefaultAccessTokenTTL  = DefaultTokenTTL
	DefaultRefreshTokenTTL = 365 * 24 * time.Hour
	// DefaultAuthCodeTTL is IR's authorisation code time to live (same
	// page: 10 minutes).
	DefaultAuthCodeTTL = 10 * time.Minute
)

// DefaultOAuthUsers are the myIR users the login page offers when
// Options.OAuthUsers is empty. Any other name is accepted as login_hint.
var DefaultOAuthUsers = []string{"alice", "bob", "carol"}

// oracleGrantType is the grant type of IR's (Oracle Access Manager's)
// token validation and revocation requests.
const oracleGrantType = "oracle-idm:/oauth/grant-type/resource-access-token/jwt"

// OAuthClient is a client application registered with the sandbox's OAuth
// server, as a DSP's is with IR at onboarding.
type OAuthClient struct {
	// ID is the client_id. Required, unique.
	ID string
	// Secret authenticates the client with HTTP Basic at the token,
	// introspect and revoke endpoints. Empty: New generates one (read it
	// back with Sandbox.OAuthClients).
	Secret string
	// RedirectURIs are the registered redirect URIs, compared exactly
	// (IR registers the DSP's callback). At least one; absolute, no
	// fragment.
	RedirectURIs []string
	// Desktop marks a native (desktop) application: like IR, the sandbox
	// issues it no refresh token.
	Desktop bool
	// ExpiresInAsString makes the token endpoint send expires_in to this
	// client as a JSON string ("28800") rather than a number: IR's answers
	// carry both forms.
	ExpiresInAsString bool
}

func (c OAuthClient) validate(i int) error {
	var errs []error
	if c.ID == "" || strings.ContainsFunc(c.ID, unicode.IsControl) {
		errs = append(errs, fmt.Errorf("sandbox: OAuthClients[%d].ID %q: must be non-empty, without control characters", i, c.ID))
	}
	if len(c.RedirectURIs) == 0 {
		errs = append(errs, fmt.Errorf("sandbox: OAuthClients[%d].RedirectURIs: at least one is required", i))
	}
	for _, u := range c.RedirectURIs {
		pu, err := url.Parse(u)
		if err != nil || !pu.IsAbs() || pu.Fragment != "" || strings.Contains(u, "#") {
			errs = append(errs, fmt.Errorf("sandbox: OAuthClients[%d].RedirectURIs %q: must be an absolute URI without a fragment (RFC 6749 §3.1.2)", i, u))
		}
	}
	return errors.Join(errs...)
}

// oauthServer is the state of the OAuth server: authorization codes,
// refresh tokens and token sets. Access tokens live in the sandbox's token
// table, where the gateway paths look them up.
type oauthServer struct {
	clients map[string]*OAuthClient // read-only after New
	users   []string
	tokens  *tokenTable
	access  time.Duration
	refresh time.Duration
	codeTTL time.Duration
	asStr   bool

	mu      sync.Mutex
	codes   map[[sha256.Size]byte]*authCode
	rtokens map[[sha256.Size]byte]*refreshToken
	st      oauthStats
}

// authCode is an issued authorization code, keyed by its hash.
type authCode struct {
	client, redirectURI, user, scope, challenge string
	expires                                     time.Time
	used                                        bool
	set                                         *tokenSet // issued from it, once redeemed
}

// tokenSet is one authorization's lineage: every access and refresh token
// descending from one redeemed code. IR kills it whole when a used refresh
// token comes back.
type tokenSet struct {
	id, client, user, scope string
	dead                    bool
	inFlight                int // refreshes of it being handled now
}

// refreshToken is an issued refresh token, keyed by its hash. A used one is
// kept: its coming back is what reuse detection looks for.
type refreshToken struct {
	set     *tokenSet
	key     string // RefreshTokenKey, for Stats
	expires time.Time
	used    bool
	reused  bool // counted in RefreshReuse already
}

type oauthStats struct {
	calls         map[string]int64
	errors        map[string]int64
	presentations map[string]int
	reuse         int
	lostRefreshes int
	killed        int
	revoked       int
	issued        int
	concurrent    int
}

func newOAuthServer(opts *Options, tokens *tokenTable) *oauthServer {
	o := &oauthServer{
		clients: map[string]*OAuthClient{},
		users:   opts.OAuthUsers,
		tokens:  tokens,
		access:  opts.AccessTokenTTL,
		refresh: opts.RefreshTokenTTL,
		codeTTL: opts.AuthCodeTTL,
		asStr:   opts.OAuthExpiresInAsString,
		codes:   map[[sha256.Size]byte]*authCode{},
		rtokens: map[[sha256.Size]byte]*refreshToken{},
		st: oauthStats{
			calls:         map[string]int64{},
			errors:        map[string]int64{},
			presentations: map[string]int{},
		},
	}
	for _, c := range opts.OAuthClients {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		if c.Secret == "" {
			c.Secret = newOpaqueToken()
		}
		o.clients[c.ID] = &c
	}
	return o
}

// OAuthClients returns the registered OAuth clients, secrets included (the
// generated ones are only known this way), sorted by ID.
func (s *Sandbox) OAuthClients() []OAuthClient {
	out := make([]OAuthClient, 0, len(s.oauth.clients))
	for _, id := range slices.Sorted(maps.Keys(s.oauth.clients)) {
		c := *s.oauth.clients[id]
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		out = append(out, c)
	}
	return out
}

// RefreshTokenKey is the key of a refresh token in
// Stats.RefreshPresentations: a truncated SHA-256, so the counters never
// hold a usable token.
func RefreshTokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:12])
}

func hashOf(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// oauthErr is an OAuth error answer (RFC 6749 §5.2 at the token endpoint,
// §4.1.2.1 at authorize). reason is for the sandbox's log only: IR's answers
// are terse, so are the sandbox's.
type oauthErr struct {
	status     int
	code, desc string
	reason     string
}

func (e *oauthErr) Error() string { return e.code + ": " + e.desc }

func errInvalidRequest(desc string) *oauthErr {
	return &oauthErr{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func errInvalidClient(reason string) *oauthErr {
	return &oauthErr{status: http.StatusUnauthorized, code: "invalid_client", desc: "Client authentication failed.", reason: reason}
}

// errInvalidGrant answers in the words of IR's sample error-response.json.
func errInvalidGrant(grantType, reason string) *oauthErr {
	return &oauthErr{status: http.StatusBadRequest, code: "invalid_grant", desc: "Invalid Grant: grant_type=" + grantType, reason: reason}
}

// tokenReply is the token endpoint's answer, fields in the order of IR's
// samples. ExpiresIn is a number or a string (OAuthClient.ExpiresInAsString).
type tokenReply struct {
	ExpiresIn    any    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
	AccessToken  string `json:"access_token"`
}

// validateReply is the answer to IR's token validation (introspection).
type validateReply struct {
	Successful bool           `json:"successful"`
	Attrs      map[string]any `json:"oracle_token_attrs_retrieval,omitempty"`
}

type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (o *oauthServer) count(label string) {
	o.mu.Lock()
	o.st.calls[label]++
	o.mu.Unlock()
}

// fail writes an OAuth error as JSON and counts it.
func (s *Sandbox) oauthFail(w http.ResponseWriter, endpoint string, e *oauthErr) {
	s.oauth.mu.Lock()
	s.oauth.st.errors[e.code]++
	s.oauth.mu.Unlock()
	if e.reason != "" {
		s.log.Info("sandbox oauth: refused", "endpoint", endpoint, "error", e.code, "reason", e.reason)
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="gateway3"`)
	}
	writeNoStore(w, e.status, oauthErrorBody{Error: e.code, Description: e.desc})
}

// writeNoStore answers JSON that must not be cached (RFC 6749 §5.1).
func writeNoStore(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate reads the form and authenticates the client by HTTP Basic,
// the only method in IR's samples: credentials in the form are refused.
func (s *Sandbox) authenticate(w http.ResponseWriter, r *http.Request) (oauthParams, *OAuthClient, *oauthErr) {
	p, err := readOAuthForm(w, r)
	if err != nil {
		return nil, nil, errInvalidRequest(err.Error())
	}
	id, secret, ok, err := parseBasic(r.Header.Get("Authorization"))
	switch {
	case err != nil:
		return nil, nil, errInvalidClient(err.Error())
	case !ok && p["client_secret"] != "":
		return nil, nil, errInvalidClient("client_secret in the form: the sandbox, like IR, takes HTTP Basic only")
	case !ok:
		return nil, nil, errInvalidClient("no HTTP Basic client credentials")
	case p["client_secret"] != "":
		return nil, nil, errInvalidRequest("more than one client authentication method")
	case p["client_id"] != "" && p["client_id"] != id:
		return nil, nil, errInvalidRequest("client_id does not match the authenticated client")
	}
	c, known := s.oauth.clients[id]
	// Hashes make the comparison constant-time whatever the lengths.
	want, got := hashOf("secret:"), hashOf("secret:"+secret)
	if known {
		want = hashOf("secret:" + c.Secret)
	}
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !known {
		return nil, nil, errInvalidClient("unknown client or wrong secret")
	}
	return p, c, nil
}

// serveToken answers POST /gateway3/oauth/token: the authorization_code and
// refresh_token grants, and (as Oracle Access Manager, which IR runs,
// accepts there) IR's validate and delete token actions.
func (s *Sandbox) serveToken(w http.ResponseWriter, r *http.Request) {
	label := "token/other"
	defer func() { s.oauth.count(label) }()
	p, client, oe := s.authenticate(w, r)
	if oe != nil {
		s.oauthFail(w, "token", oe)
		return
	}
	now := s.now()
	var reply tokenReply
	switch gt := p.word("grant_type"); gt {
	case "authorization_code":
		label = "token/authorization_code"
		reply, oe = s.oauth.redeem(p, client, now)
	case "refresh_token":
		label = "token/refresh_token"
		done := s.oauth.enterRefresh(p["refresh_token"])
		defer done()
		reply, oe = s.oauth.rotate(p, client, now)
		if oe == nil && s.inject.loseRefresh() {
			// The refresh token is spent and the new set issued; the client
			// learns neither.
			s.oauth.lostRefresh()
			reset(w)
			return
		}
	case oracleGrantType:
		switch p.word("oracle_token_action") {
		case "validate":
			label = "token/validate"
			s.introspect(w, p, client, now)
		case "delete":
			label = "token/delete"
			s.revoke(w, p, client, now)
		default:
			s.oauthFail(w, "token", badAction(p))
		}
		return
	case "":
		oe = errInvalidRequest("Missing parameter: grant_type")
	default:
		oe = &oauthErr{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "Unsupported grant_type: " + clip(gt)}
	}
	if oe != nil {
		s.oauthFail(w, "token", oe)
		return
	}
	writeNoStore(w, http.StatusOK, reply)
}

func badAction(p oauthParams) *oauthErr {
	return errInvalidRequest("Invalid token action: " + clip(p.word("oracle_token_action")))
}

// redeem exchanges an authorization code. A code is consumed by its first
// presentation whatever the outcome, so a wrong PKCE verifier cannot be
// retried; a code presented again kills the token set issued from it
// (RFC 6749 §4.1.2: the code may have been stolen).
func (o *oauthServer) redeem(p oauthParams, client *OAuthClient, now time.Time) (tokenReply, *oauthErr) {
	const gt = "authorization_code"
	code := p["code"]
	if code == "" {
		return tokenReply{}, errInvalidRequest("Missing parameter: code")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.codes[hashOf(code)]
	switch {
	case c == nil:
		return tokenReply{}, errInvalidGrant(gt, "unknown authorization code")
	case c.used:
		if c.set != nil {
			o.kill(c.set, &o.st.killed)
		}
		return tokenReply{}, errInvalidGrant(gt, "authorization code used before; its token set is revoked")
	}
	c.used = true
	switch {
	case c.client != client.ID:
		return tokenReply{}, errInvalidGrant(gt, "code issued to another client")
	case !now.Before(c.expires):
		return tokenReply{}, errInvalidGrant(gt, "authorization code expired")
	case p["redirect_uri"] != c.redirectURI:
		return tokenReply{}, errInvalidGrant(gt, "redirect_uri differs from the authorization request's")
	}
	verifier := p["code_verifier"]
	switch {
	case c.challenge == "" && verifier != "":
		return tokenReply{}, errInvalidGrant(gt, "code_verifier sent but the authorization request had no code_challenge")
	case c.challenge != "" && verifier == "":
		return tokenReply{}, errInvalidGrant(gt, "code_verifier missing")
	case c.challenge != "" && !validVerifier(verifier):
		return tokenReply{}, errInvalidGrant(gt, "code_verifier malformed (RFC 7636 §4.1: 43-128 unreserved characters)")
	case c.challenge != "" && s256(verifier) != c.challenge:
		return tokenReply{}, errInvalidGrant(gt, "code_verifier does not match code_challenge")
	}
	set := &tokenSet{id: newOpaqueToken()[:16], client: client.ID, user: c.user, scope: c.scope}
	c.set = set
	o.st.issued++
	return o.issue(set, client, now), nil
}

// rotate answers a refresh_token grant: the presented token is used up and
// a new access and refresh token issued. A used token coming back kills
// its whole set, as IR does; so does any of the set's tokens after that.
func (o *oauthServer) rotate(p oauthParams, client *OAuthClient, now time.Time) (tokenReply, *oauthErr) {
	const gt = "refresh_token"
	tok := p["refresh_token"]
	if tok == "" {
		return tokenReply{}, errInvalidRequest("Missing parameter: refresh_token")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rt := o.rtokens[hashOf(tok)]
	if rt == nil {
		return tokenReply{}, errInvalidGrant(gt, "unknown refresh token")
	}
	o.st.presentations[rt.key]++
	set := rt.set
	switch {
	case set.client != client.ID:
		return tokenReply{}, errInvalidGrant(gt, "refresh token issued to another client")
	case rt.used:
		if !rt.reused {
			rt.reused = true
			o.st.reuse++
		}
		o.kill(set, &o.st.killed)
		return tokenReply{}, errInvalidGrant(gt, "refresh token used before: token set killed")
	case set.dead:
		rt.used = true
		return tokenReply{}, errInvalidGrant(gt, "token set revoked")
	case !now.Before(rt.expires):
		return tokenReply{}, errInvalidGrant(gt, "refresh token expired")
	}
	if sc := p["scope"]; sc != "" && !subset(strings.Fields(sc), strings.Fields(set.scope)) {
		return tokenReply{}, &oauthErr{status: http.StatusBadRequest, code: "invalid_scope", desc: "Scope exceeds the original grant."}
	}
	rt.used = true
	return o.issue(set, client, now), nil
}

// kill revokes every token of set, counting it once in *counter.
func (o *oauthServer) kill(set *tokenSet, counter *int) {
	if set.dead {
		return
	}
	set.dead = true
	*counter++
	o.tokens.revokeSet(set.id)
}

// enterRefresh counts a refresh of tok's set in flight until done is
// called, keeping the most seen at once.
func (o *oauthServer) enterRefresh(tok string) (done func()) {
	if tok == "" {
		return func() {}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rt := o.rtokens[hashOf(tok)]
	if rt == nil {
		return func() {}
	}
	set := rt.set
	set.inFlight++
	o.st.concurrent = max(o.st.concurrent, set.inFlight)
	return func() {
		o.mu.Lock()
		set.inFlight--
		o.mu.Unlock()
	}
}

// issue mints an access token (and for a cloud client a refresh token) in
// set. Called with o.mu held.
func (o *oauthServer) issue(set *tokenSet, client *OAuthClient, now time.Time) tokenReply {
	at := o.tokens.add(&accessToken{user: set.user, issued: now, expires: now.Add(o.access),
		clientID: client.ID, setID: set.id, scope: set.scope})
	secs := int64(o.access / time.Second)
	reply := tokenReply{ExpiresIn: secs, TokenType: "Bearer", AccessToken: at}
	if o.asStr || client.ExpiresInAsString {
		reply.ExpiresIn = strconv.FormatInt(secs, 10)
	}
	if !client.Desktop {
		rt := newOpaqueToken()
		o.rtokens[hashOf(rt)] = &refreshToken{set: set, key: RefreshTokenKey(rt), expires: now.Add(o.refresh)}
		reply.RefreshToken = rt
	}
	return reply
}

// introspect answers IR's token validation: grant_type oracle-idm:...,
// oracle_token_action=validate, scope=MYIR.Services, assertion=<token>,
// and optionally oracle_token_attrs_retrieval naming claims to return.
func (s *Sandbox) introspect(w http.ResponseWriter, p oauthParams, client *OAuthClient, now time.Time) {
	if sc := p.word("scope"); sc != ScopeMYIR {
		s.oauthFail(w, "introspect", &oauthErr{status: http.StatusBadRequest, code: "invalid_scope", desc: ": Invalid parameter value: " + clip(sc)})
		return
	}
	tok := p["assertion"]
	if tok == "" {
		s.oauthFail(w, "introspect", errInvalidRequest("Missing parameter: assertion"))
		return
	}
	info, ok := s.oauth.describe(tok, client, now)
	if !ok {
		// IR publishes no sample of this answer; the sandbox answers as
		// its revocation does for an invalid token.
		s.oauthFail(w, "introspect", &oauthErr{status: http.StatusBadRequest, code: "invalid_grant", desc: "Cannot validate invalid token."})
		return
	}
	reply := validateReply{Successful: true}
	if want := strings.Fields(p["oracle_token_attrs_retrieval"]); len(want) > 0 {
		reply.Attrs = map[string]any{}
		for _, a := range want {
			if v, ok := info[a]; ok {
				reply.Attrs[a] = v
			}
		}
	}
	writeNoStore(w, http.StatusOK, reply)
}

// describe returns the claims of a live token the client may see: its own
// tokens, and IssueToken's (which belong to no client).
func (o *oauthServer) describe(tok string, client *OAuthClient, now time.Time) (map[string]any, bool) {
	if row, ok := o.tokens.live(tok, now); ok && (row.clientID == "" || row.clientID == client.ID) {
		scope := row.scope
		if scope == "" {
			scope = ScopeMYIR
		}
		return map[string]any{
			"prn": row.user, "sub": row.user, "exp": row.expires.Unix(), "iat": row.issued.Unix(),
			"oracle.oauth.scope": scope, "oracle.oauth.client_origin_id": row.clientID,
			"oracle.oauth.tk_context": "resource_access_tk",
		}, true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rt := o.rtokens[hashOf(tok)]
	if rt == nil || rt.used || rt.set.dead || rt.set.client != client.ID || !now.Before(rt.expires) {
		return nil, false
	}
	return map[string]any{
		"prn": rt.set.user, "sub": rt.set.user, "exp": rt.expires.Unix(), "iat": rt.expires.Add(-o.refresh).Unix(),
		"oracle.oauth.scope": rt.set.scope, "oracle.oauth.client_origin_id": rt.set.client,
		"oracle.oauth.tk_context": "refresh_token",
	}, true
}

// revoke answers IR's token revocation: oracle_token_action=delete,
// assertion=<token>. A refresh token takes its whole set with it; an access
// token only itself.
func (s *Sandbox) revoke(w http.ResponseWriter, p oauthParams, client *OAuthClient, now time.Time) {
	tok := p["assertion"]
	if tok == "" {
		s.oauthFail(w, "revoke", errInvalidRequest("Missing parameter: assertion"))
		return
	}
	if !s.oauth.terminate(tok, client, now) {
		s.oauthFail(w, "revoke", &oauthErr{status: http.StatusBadRequest, code: "invalid_grant", desc: "Cannot terminate invalid token."})
		return
	}
	writeNoStore(w, http.StatusOK, validateReply{Successful: true})
}

func (o *oauthServer) terminate(tok string, client *OAuthClient, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if rt := o.rtokens[hashOf(tok)]; rt != nil {
		if rt.used || rt.set.dead || rt.set.client != client.ID || !now.Before(rt.expires) {
			return false
		}
		rt.used = true
		o.kill(rt.set, &o.st.revoked)
		return true
	}
	row, ok := o.tokens.live(tok, now)
	if !ok || row.clientID != client.ID {
		return false
	}
	return o.tokens.revoke(tok, now)
}

// serveIntrospect answers POST /gateway3/oauth/introspect with IR's token
// validation (see introspect).
func (s *Sandbox) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	defer s.oauth.count("introspect")
	p, client, oe := s.authenticate(w, r)
	if oe == nil {
		oe = checkOracleRequest(p, "validate")
	}
	if oe != nil {
		s.oauthFail(w, "introspect", oe)
		return
	}
	s.introspect(w, p, client, s.now())
}

// serveRevoke answers POST /gateway3/oauth/revoke with IR's token
// revocation (see revoke).
func (s *Sandbox) serveRevoke(w http.ResponseWriter, r *http.Request) {
	defer s.oauth.count("revoke")
	p, client, oe := s.authenticate(w, r)
	if oe == nil {
		oe = checkOracleRequest(p, "delete")
	}
	if oe != nil {
		s.oauthFail(w, "revoke", oe)
		return
	}
	s.revoke(w, p, client, s.now())
}

func checkOracleRequest(p oauthParams, action string) *oauthErr {
	switch gt := p.word("grant_type"); gt {
	case oracleGrantType:
	case "":
		return errInvalidRequest("Missing parameter: grant_type")
	default:
		return &oauthErr{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "Unsupported grant_type: " + clip(gt)}
	}
	if p.word("oracle_token_action") != action {
		return badAction(p)
	}
	return nil
}

// serveAuthorize answers GET /gateway3/oauth/authorize. Without login_hint
// it shows a page of users to log in as (the sandbox has no myIR login);
// with login_hint=<user> (a sandbox extension, for automation) it consents
// at once and redirects with the code; with consent=deny (another) it
// redirects with error=access_denied.
func (s *Sandbox) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	s.oauth.count("authorize")
	p, err := parseOAuthParams(r.URL.RawQuery)
	if err != nil {
		s.authorizePage(w, http.StatusBadRequest, errInvalidRequest(err.Error()))
		return
	}
	// RFC 6749 §4.1.2.1: until the client and redirect URI are known good,
	// errors go to the user, never to the redirect URI.
	client, ok := s.oauth.clients[p["client_id"]]
	if !ok {
		s.authorizePage(w, http.StatusBadRequest, errInvalidRequest("Unknown or missing client_id."))
		return
	}
	redirect := p["redirect_uri"]
	if !slices.Contains(client.RedirectURIs, redirect) {
		s.authorizePage(w, http.StatusBadRequest, errInvalidRequest("redirect_uri missing or not registered for this client."))
		return
	}
	if oe := s.checkAuthorize(p); oe != nil {
		s.oauth.mu.Lock()
		s.oauth.st.errors[oe.code]++
		s.oauth.mu.Unlock()
		redirectTo(w, r, redirect, map[string]string{"error": oe.code, "error_description": oe.desc, "state": p["state"]})
		return
	}
	user := p["login_hint"]
	if user == "" {
		s.loginPage(w, r, client)
		return
	}
	code := newOpaqueToken()
	now := s.now()
	s.oauth.mu.Lock()
	s.oauth.pruneCodes(now)
	s.oauth.codes[hashOf(code)] = &authCode{client: client.ID, redirectURI: redirect, user: user,
		scope: strings.Join(strings.Fields(p["scope"]), " "), challenge: p["code_challenge"], expires: now.Add(s.oauth.codeTTL)}
	s.oauth.mu.Unlock()
	redirectTo(w, r, redirect, map[string]string{"code": code, "state": p["state"]})
}

// checkAuthorize checks an authorization request whose client and redirect
// URI are good; its errors are redirected.
func (s *Sandbox) checkAuthorize(p oauthParams) *oauthErr {
	switch rt := p["response_type"]; rt {
	case "code":
	case "":
		return errInvalidRequest("Missing parameter: response_type")
	default:
		return &oauthErr{code: "unsupported_response_type", desc: "Only response_type=code is supported."}
	}
	scopes := strings.Fields(p["scope"])
	if !slices.Contains(scopes, ScopeMYIR) || !subset(scopes, []string{ScopeMYIR}) {
		return &oauthErr{code: "invalid_scope", desc: "scope must be " + ScopeMYIR + "."}
	}
	challenge, method := p["code_challenge"], p["code_challenge_method"]
	switch {
	case challenge == "" && method != "":
		return errInvalidRequest("code_challenge_method without code_challenge.")
	case challenge != "" && method != "S256":
		// RFC 7636 §4.3: a missing method means plain, which the sandbox
		// refuses: nothing says IR takes it.
		return errInvalidRequest("code_challenge_method must be S256.")
	case challenge != "" && !validChallenge(challenge):
		return errInvalidRequest("code_challenge must be 43 base64url characters (S256).")
	}
	if p["consent"] == "deny" {
		return &oauthErr{code: "access_denied", desc: "The user denied the request."}
	}
	if u := p["login_hint"]; u != "" && !validUser(u) {
		return errInvalidRequest("login_hint must be 1-64 printable characters.")
	}
	return nil
}

// pruneCodes drops expired and used codes once the table grows, so a long
// run does not keep every code it ever issued. Called with o.mu held.
func (o *oauthServer) pruneCodes(now time.Time) {
	const keep = 4096
	if len(o.codes) < keep {
		return
	}
	for h, c := range o.codes {
		// A used code is kept while it could still come back within its
		// life (and kill its set); after that it is just refused.
		if !now.Before(c.expires) {
			delete(o.codes, h)
		}
	}
}

// redirectTo sends the user agent to the registered redirect URI with the
// parameters added to its query (empty ones left out).
func redirectTo(w http.ResponseWriter, r *http.Request, redirect string, params map[string]string) {
	u, err := url.Parse(redirect) // registered, so parsed at New already
	if err != nil {
		http.Error(w, "bad redirect URI", http.StatusInternalServerError)
		return
	}
	q := u.Query()
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

var authorizeTmpl = template.Must(template.New("authorize").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gatewayq sandbox: myIR login</title></head>
<body>
{{if .Error}}<h1>Authorization request refused</h1>
<p><code>{{.Error.Code}}</code>: {{.Error.Desc}}</p>
{{else}}<h1>gatewayq sandbox: log in to myIR</h1>
<p>This is the IR sandbox: there is no password. Choose the myIR user
<b>{{.Client}}</b> acts for ({{.Scope}}):</p>
<ul>{{range .Users}}<li><a href="{{.URL}}">{{.Name}}</a></li>{{end}}</ul>
<form method="get" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}
<label>Another user: <input name="login_hint" maxlength="64" required></label>
<button type="submit">Log in and consent</button>
</form>
<p><a href="{{.Deny}}">Deny</a></p>
{{end}}</body></html>
`))

type pageLink struct{ Name, URL string }
type pageField struct{ Name, Value string }

// authorizePage shows an error to the user (never redirected).
func (s *Sandbox) authorizePage(w http.ResponseWriter, status int, e *oauthErr) {
	s.oauth.mu.Lock()
	s.oauth.st.errors[e.code]++
	s.oauth.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = authorizeTmpl.Execute(w, map[string]any{"Error": map[string]string{"Code": e.code, "Desc": e.desc}})
}

// loginPage lists users to log in as, each a link back to authorize with
// login_hint added.
func (s *Sandbox) loginPage(w http.ResponseWriter, r *http.Request, client *OAuthClient) {
	with := func(k, v string) string {
		q := r.URL.Query()
		q.Set(k, v)
		return OAuthAuthorizePath + "?" + q.Encode()
	}
	var users []pageLink
	for _, u := range s.oauth.users {
		users = append(users, pageLink{Name: u, URL: with("login_hint", u)})
	}
	var hidden []pageField
	for _, k := range slices.Sorted(maps.Keys(r.URL.Query())) {
		if k != "login_hint" {
			hidden = append(hidden, pageField{Name: k, Value: r.URL.Query().Get(k)})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = authorizeTmpl.Execute(w, map[string]any{
		"Client": client.ID, "Scope": ScopeMYIR, "Users": users, "Hidden": hidden,
		"Action": OAuthAuthorizePath, "Deny": with("consent", "deny"),
	})
}

// s256 is RFC 7636's S256 transform.
func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// validVerifier: RFC 7636 §4.1, 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	return len(v) >= 43 && len(v) <= 128 && !strings.ContainsFunc(v, func(r rune) bool {
		return !isUnreserved(r)
	})
}

// validChallenge: an S256 challenge is a SHA-256 in unpadded base64url.
func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

func isUnreserved(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r)
}

// validUser accepts a myIR user name for login_hint: 1 to 64 printable
// characters.
func validUser(u string) bool {
	return utf8.ValidString(u) && utf8.RuneCountInString(u) <= 64 && strings.TrimSpace(u) != "" &&
		!strings.ContainsFunc(u, func(r rune) bool { return !unicode.IsPrint(r) })
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func (o *oauthServer) lostRefresh() {
	o.mu.Lock()
	o.st.lostRefreshes++
	o.mu.Unlock()
}

// snapshot adds the OAuth counters to st.
func (o *oauthServer) snapshot(st *Stats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st.OAuthCalls = maps.Clone(o.st.calls)
	st.OAuthErrors = maps.Clone(o.st.errors)
	st.RefreshPresentations = maps.Clone(o.st.presentations)
	st.RefreshReuse = o.st.reuse
	st.RefreshesLost = o.st.lostRefreshes
	st.TokenSetsIssued = o.st.issued
	st.TokenSetsKilled = o.st.killed
	st.TokenSetsRevoked = o.st.revoked
	st.ConcurrentRefreshes = o.st.concurrent
}
