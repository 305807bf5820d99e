package sandbox_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatewayq/gatewayq/sandbox"
)

// Example_oauthAuthorizationCode runs IR's authorization-code grant against
// the sandbox: authorize with PKCE (login_hint stands in for the myIR
// login), redeem the code, refresh, and see a replayed refresh token kill
// the token set.
func Example_oauthAuthorizationCode() {
	s, err := sandbox.New(sandbox.Options{OAuthClients: []sandbox.OAuthClient{{
		ID: "my-dsp", Secret: "s3cret", RedirectURIs: []string{"https://dsp.example/callback"},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.PKI().CertPool()}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// 1. Authorize: the sandbox consents for login_hint at once.
	verifier := "a-random-string-of-43-or-more-unreserved-characters"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {"my-dsp"}, "redirect_uri": {"https://dsp.example/callback"},
		"scope": {sandbox.ScopeMYIR}, "state": {"xyz"}, "login_hint": {"alice"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	resp, err := client.Get(s.DesktopURL() + sandbox.OAuthAuthorizePath + "?" + q.Encode())
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	fmt.Println("authorize:", resp.StatusCode, "state", loc.Query().Get("state"))

	// 2. Redeem the code, client authenticated by HTTP Basic.
	token := func(form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.DesktopURL()+sandbox.OAuthTokenPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("my-dsp", "s3cret")
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, first := token(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://dsp.example/callback"}, "code_verifier": {verifier}})
	fmt.Println("token:", status, first["token_type"], first["expires_in"])

	// 3. Refresh: a new pair; the old refresh token is used up.
	status, _ = token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
	fmt.Println("refresh:", status)

	// 4. The old refresh token again: the whole set is killed.
	status, answer := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
	fmt.Println("replay:", status, answer["error"])
	st := s.Stats()
	fmt.Println("reuse:", st.RefreshReuse, "sets killed:", st.TokenSetsKilled)

	// Output:
	// authorize: 302 state xyz
	// token: 200 Bearer 28800
	// refresh: 200
	// replay: 400 invalid_grant
	// reuse: 1 sets killed: 1
}

// ExampleSandbox_Advance moves the sandbox's clock: tokens, codes and
// the 160 window see 8 hours pass at once.
func ExampleSandbox_Advance() {
	wall := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC) // a fixed clock for the output
	s, err := sandbox.New(sandbox.Options{Now: func() time.Time { return wall }})
	if err != nil {
		log.Fatal(err)
	}
	_ = s.IssueToken("alice", 0) // lives 8 h, like IR's access tokens
	s.Advance(8 * time.Hour)
	fmt.Println(s.Now().Format(time.DateTime))
	// Output: 2026-04-01 17:00:00
}
