package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/internal/syncbuf"
	"github.com/gatewayq/gatewayq/sandbox"
)

func TestRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", dir, "--cloud-addr", "127.0.0.1:0", "--desktop-addr", "127.0.0.1:0",
			"--clients", "2", "--issue-token", "alice", "--fault-reset", "0.01", "--fault-lose-response", "0.5", "--fault-seed", "7"}, &out, &errOut)
	}()
	for !strings.Contains(out.String(), "access token for alice") {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, want := range []string{"https://127.0.0.1:", filepath.Join(dir, "client.pem"), "OAuth client:   gatewayq-sandbox secret ", filepath.Join(dir, "client-2.pem"), "JWT sub:",
		"faults:         hang 0 reset 0.01 5xx 0 lose-response 0.5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "client-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunBadFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"negative clients", []string{"--clients", "-1"}},
		{"probability above 1", []string{"--fault-hang", "1.5"}},
		{"probabilities summing past 1", []string{"--fault-reset", "0.6", "--fault-5xx", "0.6"}},
		{"not a number", []string{"--fault-lose-response", "often"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncbuf.Buffer
			args := append([]string{"--dir", t.TempDir(), "--cloud-addr", "127.0.0.1:0", "--desktop-addr", "127.0.0.1:0"}, tt.args...)
			// Cancelled: should run accept the flags, it returns at once.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := run(ctx, args, &out, &errOut); err == nil {
				t.Errorf("run accepted %v", tt.args)
			}
		})
	}
}

// TestRunOAuth follows the printed login URL and redeems the code with the
// secret from the environment. Not parallel: it sets the environment.
func TestRunOAuth(t *testing.T) {
	t.Setenv(oauthSecretEnv, "env-secret-123")
	dir := filepath.Join(t.TempDir(), "pki")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", dir, "--cloud-addr", "127.0.0.1:0", "--desktop-addr", "127.0.0.1:0",
			"--oauth-client-id", "my-app", "--oauth-redirect-uri", "https://dsp.example/cb", "--oauth-expires-in-string",
			"--access-token-ttl", "1h"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var login string
	for login == "" {
		for _, line := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "OAuth login:"); ok {
				login = strings.TrimSpace(v)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if strings.Contains(out.String(), "env-secret-123") || !strings.Contains(out.String(), "OAuth client:   my-app (secret from "+oauthSecretEnv+")") {
		t.Errorf("output:\n%s", out.String())
	}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Host != "dsp.example" || loc.Query().Get("code") == "" {
		t.Fatalf("login: HTTP %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	base, _, _ := strings.Cut(login, sandbox.OAuthAuthorizePath)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"https://dsp.example/cb"}}
	req, _ := http.NewRequest(http.MethodPost, base+sandbox.OAuthTokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("my-app", "env-secret-123")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: HTTP %d %v %v", resp.StatusCode, tok, err)
	}
	if tok["expires_in"] != "3600" || tok["refresh_token"] == nil {
		t.Errorf("token answer %v", tok)
	}
}
