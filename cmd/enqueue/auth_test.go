package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/internal/sandboxtest"
	"github.com/gatewayq/gatewayq/sandbox"
	"github.com/gatewayq/gatewayq/worker"
)

// authEnv configures the CLI for the sandbox's OAuth server and the
// test's Redis, only through GATEWAYQ_* variables.
func authEnv(t *testing.T, h *harness, sb *sandbox.Sandbox, ca string) []string {
	t.Helper()
	var key [32]byte
	_, _ = rand.Read(key[:])
	client := sb.OAuthClients()[0]
	env := map[string]string{
		"redis.addr":            h.r.Addr,
		"redis.key_prefix":      h.r.Prefix,
		"oauth.base_url":        sb.DesktopURL(),
		"oauth.client_id":       client.ID,
		"oauth.client_secret":   client.Secret,
		"oauth.redirect_url":    sandbox.DefaultOAuthRedirectURI,
		"tls.ca_bundle":         ca,
		"tokens.encryption_key": base64.StdEncoding.EncodeToString(key[:]),
	}
	var out []string
	for k, v := range env {
		out = append(out, config.EnvName(k)+"="+v)
	}
	return out
}

func TestAuthCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sb, files := sandboxtest.Sandbox(t, sandbox.Options{})
	env := authEnv(t, h, sb, files.CA)

	// login: the sandbox consents as alice; the set is stored encrypted.
	res := h.runRaw(env, "auth", "login", "--id", "acme-alice", "--login-hint", "alice")
	res.want(t, exitOK, []string{`stored token set "acme-alice"`, "refreshable: true"}, nil)

	// A second way in: IR's token response saved by other software.
	h.stdin = `{"access_token":"imported-access-SECRET","refresh_token":"imported-refresh-SECRET","expires_in":"28800","token_type":"Bearer"}`
	res = h.runRaw(env, "auth", "import", "--id", "legacy-bob", "--file", "-", "--user", "bob", "--endpoint", "desktop")
	res.want(t, exitOK, []string{`stored token set "legacy-bob"`, "desktop endpoint"}, nil)

	// list shows both, never a token.
	res = h.runRaw(env, "auth", "list")
	res.want(t, exitOK, []string{"acme-alice", "legacy-bob", "bob", "desktop"}, nil)
	if strings.Contains(res.stdout, "SECRET") {
		t.Fatalf("list printed a token:\n%s", res.stdout)
	}

	// The stored set really works at the gateway: its access token passes
	// the sandbox's bearer check, and nothing in Redis holds it in clear.
	cfg, err := config.Load("", append(env, "GATEWAYQ_PROFILE=sandbox"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(worker.RedisOptions(cfg.Redis))
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := worker.TokenStore(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := store.Get(context.Background(), "acme-alice")
	if err != nil || ts.AccessToken == "" || ts.RefreshToken == "" || time.Until(ts.Expiry) < 7*time.Hour {
		t.Fatalf("stored set %v: %v", ts, err)
	}
	keys, _ := rdb.Keys(context.Background(), h.r.Prefix+"*").Result()
	for _, k := range keys {
		v, _ := rdb.Dump(context.Background(), k).Result()
		if strings.Contains(v, ts.AccessToken) || strings.Contains(v, "imported-access-SECRET") {
			t.Fatalf("key %s holds a token in clear", k)
		}
	}

	// revoke: IR revokes the set, and it is gone here.
	res = h.runRaw(env, "auth", "revoke", "--id", "acme-alice")
	res.want(t, exitOK, []string{`revoked and deleted token set "acme-alice"`}, nil)
	if st := sb.Stats(); st.TokenSetsRevoked != 1 {
		t.Fatalf("sandbox revoked %d sets, want 1", st.TokenSetsRevoked)
	}
	res = h.runRaw(env, "auth", "list")
	if strings.Contains(res.stdout, "acme-alice") {
		t.Fatalf("revoked set still listed:\n%s", res.stdout)
	}

	// Bad input is named.
	h.stdin = `{"access_token":"x","expires_in":"soon"}`
	h.runRaw(env, "auth", "import", "--id", "x", "--file", "-").want(t, exitError, nil, []string{"expires_in"})
	h.runRaw(env, "auth", "login").want(t, exitError, nil, []string{"--id is required"})
	h.runRaw(env, "auth", "frobnicate").want(t, exitError, nil, []string{`unknown command "frobnicate"`})
}
