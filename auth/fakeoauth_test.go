package auth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOAuth is IR's OAuth server as these tests need it: single-use
// rotating refresh tokens, reuse detection that kills the whole token set
// (its "family"), IR's validate and delete token actions, and counts of
// every refresh token presented. It shares no code with OAuthClient.
type fakeOAuth struct {
	srv              *httptest.Server
	clientID, secret string

	mu          sync.Mutex
	families    map[int]bool // alive?
	refresh     map[string]*fakeRT
	access      map[string]int // access token -> family
	presented   map[string]int // refresh token -> presentations
	issued      []string       // every token ever issued, for secret scans
	latestAT    map[int]string // family -> newest access token
	codes       map[string]string
	nextFamily  int
	refreshes   int // refresh requests, all tokens
	introspects int

	// Knobs, set before use (or under mu).
	expiresIn  any  // the expires_in sent; nil means 28800 (a number)
	allowReuse bool // no reuse detection: a used token rotates again
	failNext   []int
	// beforeRefresh runs for each refresh request before it is processed,
	// afterRotate after the token was rotated and before the answer is
	// written; either may block to stall a holder.
	beforeRefresh func(rt string)
	afterRotate   func(rt string)
}

type fakeRT struct {
	family int
	used   bool
}

const (
	fakeClientID = "Test30206492"
	fakeSecret   = "Oauth2IRSecrett"
)

func newFakeOAuth(t testing.TB) *fakeOAuth {
	f := &fakeOAuth{
		clientID: fakeClientID, secret: fakeSecret,
		families: map[int]bool{}, refresh: map[string]*fakeRT{}, access: map[string]int{},
		presented: map[string]int{}, latestAT: map[int]string{}, codes: map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+DefaultTokenPath, f.token)
	mux.HandleFunc("POST "+DefaultIntrospectPath, f.introspect)
	mux.HandleFunc("POST "+DefaultRevokePath, f.revoke)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOAuth) client() *OAuthClient {
	return &OAuthClient{BaseURL: f.srv.URL, ClientID: f.clientID, ClientSecret: f.secret, HTTPClient: f.srv.Client()}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// issueLocked mints a new access and refresh token in family fam.
func (f *fakeOAuth) issueLocked(fam int) (at, rt string) {
	at, rt = "AT-s3cr3t-"+randHex(12), "RT-s3cr3t-"+randHex(12)
	f.access[at] = fam
	f.refresh[rt] = &fakeRT{family: fam}
	f.latestAT[fam] = at
	f.issued = append(f.issued, at, rt)
	return at, rt
}

// grant is a user's consent: a new family and its first token set.
func (f *fakeOAuth) grant(id string, expiry time.Time) TokenSet {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextFamily++
	fam := f.nextFamily
	f.families[fam] = true
	at, rt := f.issueLocked(fam)
	return TokenSet{ID: id, AccessToken: at, RefreshToken: rt, Expiry: expiry, Endpoint: "cloud", Scope: Scope, User: "myir-user", ConsentedAt: expiry.Add(-8 * time.Hour)}
}

// revokeFamilyOf kills the family of refresh token rt at "IR" (the user
// withdrew consent).
func (f *fakeOAuth) revokeFamilyOf(rt string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.families[f.refresh[rt].family] = false
}

func (f *fakeOAuth) presentations(rt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.presented[rt]
}

func (f *fakeOAuth) counts() (refreshes, introspects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes, f.introspects
}

func (f *fakeOAuth) latestAccess(rt string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latestAT[f.refresh[rt].family]
}

func (f *fakeOAuth) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthErr(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (f *fakeOAuth) authorized(w http.ResponseWriter, r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok || id != f.clientID || secret != f.secret {
		oauthErr(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return false
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "form expected")
		return false
	}
	return true
}

func (f *fakeOAuth) token(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		f.refreshGrant(w, r)
	case "authorization_code":
		f.mu.Lock()
		challenge, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		if !ok || (challenge != "" && pkceChallenge(r.PostForm.Get("code_verifier")) != challenge) {
			f.mu.Unlock()
			oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid Grant: grant_type=authorization_code")
			return
		}
		f.nextFamily++
		f.families[f.nextFamily] = true
		at, rt := f.issueLocked(f.nextFamily)
		f.mu.Unlock()
		f.answer(w, at, rt)
	default:
		oauthErr(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

func (f *fakeOAuth) refreshGrant(w http.ResponseWriter, r *http.Request) {
	rt := r.PostForm.Get("refresh_token")
	f.mu.Lock()
	f.refreshes++
	f.presented[rt]++
	var fail int
	if len(f.failNext) > 0 {
		fail, f.failNext = f.failNext[0], f.failNext[1:]
	}
	before, after := f.beforeRefresh, f.afterRotate
	f.mu.Unlock()
	if fail != 0 {
		http.Error(w, "unavailable", fail)
		return
	}
	if before != nil {
		before(rt)
	}
	f.mu.Lock()
	t, ok := f.refresh[rt]
	switch {
	case !ok || !f.families[t.family]:
		f.mu.Unlock()
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid Grant: grant_type=refresh_token")
		return
	case t.used && !f.allowReuse:
		// Reuse detection: the whole set dies, as at IR.
		f.families[t.family] = false
		f.mu.Unlock()
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid Grant: grant_type=refresh_token")
		return
	}
	t.used = true
	at, nrt := f.issueLocked(t.family)
	f.mu.Unlock()
	if after != nil {
		after(rt)
	}
	f.answer(w, at, nrt)
}

func (f *fakeOAuth) answer(w http.ResponseWriter, at, rt string) {
	f.mu.Lock()
	exp := f.expiresIn
	f.mu.Unlock()
	if exp == nil {
		exp = 28800
	}
	writeJSON(w, http.StatusOK, map[string]any{"expires_in": exp, "token_type": "Bearer", "access_token": at, "refresh_token": rt})
}

func (f *fakeOAuth) tokenAlive(tok string) bool {
	if t, ok := f.refresh[tok]; ok {
		return !t.used && f.families[t.family]
	}
	if fam, ok := f.access[tok]; ok {
		return f.families[fam]
	}
	return false
}

func (f *fakeOAuth) introspect(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if r.PostForm.Get("grant_type") != oracleTokenGrant || r.PostForm.Get("oracle_token_action") != "validate" {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Invalid token action")
		return
	}
	f.mu.Lock()
	f.introspects++
	alive := f.tokenAlive(r.PostForm.Get("assertion"))
	f.mu.Unlock()
	if !alive {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid token.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"successful": true, "oracle_token_attrs_retrieval": map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "prn": "myir-user"}})
}

func (f *fakeOAuth) revoke(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if r.PostForm.Get("oracle_token_action") != "delete" {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Invalid token action: "+r.PostForm.Get("oracle_token_action"))
		return
	}
	tok := r.PostForm.Get("assertion")
	f.mu.Lock()
	alive := f.tokenAlive(tok)
	if t, ok := f.refresh[tok]; ok {
		t.used = true
	}
	delete(f.access, tok)
	f.mu.Unlock()
	if !alive {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Cannot terminate invalid token.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"successful": true})
}

// assertNoSecrets fails if any token the fake issued appears in texts.
func (f *fakeOAuth) assertNoSecrets(t *testing.T, texts ...string) {
	t.Helper()
	all := strings.Join(texts, "\n")
	for _, s := range f.secrets() {
		if strings.Contains(all, s) {
			t.Errorf("a token leaked into errors or logs: %s", fmt.Sprintf("%.12s...", s))
		}
	}
	if strings.Contains(all, "s3cr3t") {
		t.Error("token material (s3cr3t) leaked into errors or logs")
	}
}
