package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/worker"
)

const authUsage = `Usage: enqueue auth <login|import|list|revoke> [flags]

Manage end users' OAuth token sets (encrypted in Redis with
tokens.encryption_key). Jobs name a token set by ID; no command prints a
token.

  login    run IR's authorization-code flow with PKCE and store the set
  import   store tokens obtained elsewhere (IR's token response as JSON)
  list     show the stored sets: user, endpoint, expiry, refreshable
  revoke   revoke a set at IR and delete it
`

// auth runs "enqueue auth ...".
func (a *app) auth(ctx context.Context, g *globals, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, authUsage)
		return exitError
	}
	switch args[0] {
	case "login":
		return a.authLogin(ctx, g, args[1:])
	case "import":
		return a.authImport(ctx, g, args[1:])
	case "list":
		return a.authList(ctx, g, args[1:])
	case "revoke":
		return a.authRevoke(ctx, g, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, authUsage)
		return exitOK
	}
	fmt.Fprintf(a.stderr, "enqueue auth: unknown command %q\n\n%s", args[0], authUsage)
	return exitError
}

// tokenStore opens the encrypted store (and the OAuth client, when
// configured) of the session's config.
func (a *app) tokenStore(g *globals) (*auth.Store, *auth.OAuthClient, func(), error) {
	s, err := a.connect(g)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.cfg.Tokens.EncryptionKey == "" {
		return nil, nil, nil, errors.New("tokens.encryption_key is not set (GATEWAYQ_TOKENS_ENCRYPTION_KEY): token sets are stored encrypted")
	}
	rdb := worker.NewRedis(s.cfg.Redis)
	store, err := worker.TokenStore(s.cfg, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	oc, err := worker.OAuthClient(s.cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, fmt.Errorf("oauth: %w", err)
	}
	if oc != nil {
		store.SetOAuth(oc)
	}
	return store, oc, func() { _ = rdb.Close() }, nil
}

func endpointFlag(s string) (gatewayclient.EndpointKind, error) {
	switch e := gatewayclient.EndpointKind(s); e {
	case gatewayclient.EndpointCloud, gatewayclient.EndpointDesktop:
		return e, nil
	}
	return "", fmt.Errorf("--endpoint: want cloud or desktop, got %q", s)
}

func (a *app) authLogin(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "auth login", "auth login --id ID [flags]",
		`Runs IR's authorization-code flow with PKCE for one myIR user and stores
the token set under --id. Open the printed address in a browser; IR sends
the browser to oauth.redirect_url with a code. When that address is a
loopback http URL, this command listens there and finishes by itself;
otherwise paste the code back with --code and the printed --verifier.
Against the sandbox, --login-hint USER consents as USER without a browser.
`)
	id := fs.String("id", "", "token set `ID` jobs will name (required)")
	endpoint := fs.String("endpoint", "cloud", "endpoint the set is for: cloud or desktop (no refresh tokens)")
	code := fs.String("code", "", "authorization `code` from the redirect, to finish a login started earlier")
	verifier := fs.String("verifier", "", "the PKCE `verifier` printed when the login started (with --code)")
	hint := fs.String("login-hint", "", "sandbox only: consent as this `user` without a browser")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the browser's redirect")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	if *id == "" {
		fmt.Fprintln(a.stderr, "enqueue auth login: --id is required")
		return exitError
	}
	ep, err := endpointFlag(*endpoint)
	if err != nil {
		return a.fail(err)
	}
	store, oc, closeFn, err := a.tokenStore(g)
	if err != nil {
		return a.fail(err)
	}
	defer closeFn()
	if oc == nil {
		return a.fail(errors.New("oauth.client_id is not set: configure IR's OAuth client first"))
	}
	s, _ := a.connect(g)
	redirect := s.cfg.OAuth.RedirectURL
	if redirect == "" {
		return a.fail(errors.New("oauth.redirect_url is not set: it must be the callback registered with IR"))
	}

	if *code != "" {
		if *verifier == "" {
			return a.fail(errors.New("--code needs the --verifier printed when the login started"))
		}
		return a.finishLogin(ctx, store, oc, *id, ep, *code, *verifier, redirect, "")
	}
	v, challenge := oc.NewPKCE()
	state := randomHex(16)
	authURL := oc.AuthCodeURL(state, challenge, redirect)

	if *hint != "" {
		c, err := sandboxConsent(ctx, oc, authURL, *hint, state)
		if err != nil {
			return a.fail(err)
		}
		return a.finishLogin(ctx, store, oc, *id, ep, c, v, redirect, *hint)
	}
	if u, err := url.Parse(redirect); err == nil && u.Scheme == "http" && isLoopback(u.Hostname()) {
		fmt.Fprintf(a.stdout, "Open this address in a browser and log in to myIR:\n\n  %s\n\nWaiting for IR's redirect to %s ...\n", authURL, redirect)
		c, err := awaitCallback(ctx, u, state, *wait)
		if err != nil {
			return a.fail(err)
		}
		return a.finishLogin(ctx, store, oc, *id, ep, c, v, redirect, "")
	}
	fmt.Fprintf(a.stdout, "Open this address in a browser and log in to myIR:\n\n  %s\n\n", authURL)
	fmt.Fprintf(a.stdout, "IR then sends the browser to %s?code=...&state=%s\nFinish with:\n\n  enqueue auth login --id %s --endpoint %s --code CODE --verifier %s\n", redirect, state, *id, ep, v)
	return exitOK
}

func (a *app) finishLogin(ctx context.Context, store *auth.Store, oc *auth.OAuthClient, id string, ep gatewayclient.EndpointKind, code, verifier, redirect, user string) int {
	ts, err := oc.Exchange(ctx, code, verifier, redirect)
	if err != nil {
		return a.fail(fmt.Errorf("exchange the code: %w", err))
	}
	ts.ID, ts.Endpoint, ts.User, ts.ConsentedAt = id, ep, user, a.now().UTC()
	if err := store.Put(ctx, ts); err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "stored token set %q (%s endpoint, access token until %s, refreshable: %v)\n", id, ep, ts.Expiry.Format(time.RFC3339), ts.RefreshToken != "")
	return exitOK
}

// sandboxConsent asks the sandbox's authorize endpoint to consent as user
// (its login_hint extension) and reads the code from the redirect.
func sandboxConsent(ctx context.Context, oc *auth.OAuthClient, authURL, user, state string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL+"&login_hint="+url.QueryEscape(user), nil)
	if err != nil {
		return "", err
	}
	resp, err := oc.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("authorize answered HTTP %d without a redirect (is this the sandbox?)", resp.StatusCode)
	}
	return codeFrom(loc.Query(), state)
}

func codeFrom(q url.Values, state string) (string, error) {
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("IR refused the consent: %s %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return "", errors.New("the redirect's state does not match this login: ignored")
	}
	c := q.Get("code")
	if c == "" {
		return "", errors.New("the redirect carries no code")
	}
	return c, nil
}

// awaitCallback serves the loopback redirect URL until IR's redirect
// brings the code, or wait passes.
func awaitCallback(ctx context.Context, u *url.URL, state string, wait time.Duration) (string, error) {
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return "", fmt.Errorf("listen on %s for the redirect: %w", u.Host, err)
	}
	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != u.Path {
			http.NotFound(w, r)
			return
		}
		c, err := codeFrom(r.URL.Query(), state)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		} else {
			fmt.Fprintln(w, "gatewayq: consent received; you can close this window.")
		}
		select {
		case got <- result{c, err}:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	select {
	case r := <-got:
		return r.code, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("no redirect within %s", wait)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenResponse is IR's token endpoint answer, as a DSP may have saved it.
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	Scope        string          `json:"scope"`
	TokenType    string          `json:"token_type"`
}

func (t tokenResponse) lifetime() (time.Duration, error) {
	s := strings.Trim(strings.TrimSpace(string(t.ExpiresIn)), `"`)
	if s == "" {
		return 0, errors.New("expires_in missing")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("expires_in is neither a positive number nor a string of one")
	}
	return time.Duration(n * float64(time.Second)), nil
}

func (a *app) authImport(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "auth import", "auth import --id ID --file FILE [flags]",
		`Stores tokens obtained elsewhere: a file (or - for standard input) holding
IR's token response as JSON (access_token, refresh_token, expires_in as a
number or a string). The file is read, never echoed.
`)
	id := fs.String("id", "", "token set `ID` (required)")
	file := fs.String("file", "", "`file` with IR's token response, - for standard input (required)")
	endpoint := fs.String("endpoint", "cloud", "endpoint the set is for: cloud or desktop")
	user := fs.String("user", "", "the myIR user, for operators' reference")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	if *id == "" || *file == "" {
		fmt.Fprintln(a.stderr, "enqueue auth import: --id and --file are required")
		return exitError
	}
	ep, err := endpointFlag(*endpoint)
	if err != nil {
		return a.fail(err)
	}
	var r io.Reader = a.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return a.fail(err)
		}
		defer f.Close()
		r = f
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&tr); err != nil {
		return a.fail(fmt.Errorf("%s: not IR's token response as JSON", *file))
	}
	life, err := tr.lifetime()
	if err != nil {
		return a.fail(fmt.Errorf("%s: %w", *file, err))
	}
	if tr.AccessToken == "" {
		return a.fail(fmt.Errorf("%s: no access_token", *file))
	}
	store, _, closeFn, err := a.tokenStore(g)
	if err != nil {
		return a.fail(err)
	}
	defer closeFn()
	now := a.now().UTC()
	ts := auth.TokenSet{ID: *id, AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, Expiry: now.Add(life),
		Endpoint: ep, Scope: tr.Scope, User: *user, ConsentedAt: now}
	if err := store.Put(ctx, ts); err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "stored token set %q (%s endpoint, access token until %s, refreshable: %v)\n", *id, ep, ts.Expiry.Format(time.RFC3339), ts.RefreshToken != "")
	return exitOK
}

func (a *app) authList(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "auth list", "auth list", "Lists the stored token sets; never a token.\n")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	store, _, closeFn, err := a.tokenStore(g)
	if err != nil {
		return a.fail(err)
	}
	defer closeFn()
	sets, err := store.List(ctx)
	if err != nil {
		return a.fail(err)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tENDPOINT\tACCESS TOKEN UNTIL\tREFRESHABLE\tKEY")
	for _, s := range sets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", s.ID, s.User, s.Endpoint, s.Expiry.UTC().Format(time.RFC3339), s.HasRefreshToken, s.KeyID)
	}
	_ = tw.Flush()
	return exitOK
}

func (a *app) authRevoke(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "auth revoke", "auth revoke --id ID",
		"Revokes a token set at IR (its refresh token, which takes the set with it) and deletes it here.\n")
	id := fs.String("id", "", "token set `ID` (required)")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	if *id == "" {
		fmt.Fprintln(a.stderr, "enqueue auth revoke: --id is required")
		return exitError
	}
	store, oc, closeFn, err := a.tokenStore(g)
	if err != nil {
		return a.fail(err)
	}
	defer closeFn()
	ts, err := store.Get(ctx, *id)
	if err != nil {
		return a.fail(err)
	}
	if oc != nil {
		tok, hint := ts.RefreshToken, "refresh_token"
		if tok == "" {
			tok, hint = ts.AccessToken, "access_token"
		}
		if err := oc.Revoke(ctx, tok, hint); err != nil {
			fmt.Fprintf(a.stderr, "enqueue auth revoke: IR did not confirm the revocation (%v); deleting the set here anyway\n", err)
		}
	}
	if err := store.Delete(ctx, *id); err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "revoked and deleted token set %q\n", *id)
	return exitOK
}
