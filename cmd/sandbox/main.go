// Command sandbox runs gatewayq's IR gateway emulator on its own, for demos,
// other teams and load tests: the mutual-TLS ("cloud") and one-way TLS
// ("desktop") listeners, with a generated PKI written to --dir.
//
//	go run ./cmd/sandbox --issue-token alice
//	curl --cacert .run/sandbox/ca.pem --cert .run/sandbox/client.pem \
//	     --key .run/sandbox/client-key.pem https://127.0.0.1:4046/sandbox/stats
//
// Fault injection starts with the --fault-* flags (probabilities per call,
// see sandbox.Faults), e.g. --fault-reset 0.01 --fault-lose-response 0.02.
//
// The admin endpoints (POST /sandbox/tokens, POST and DELETE
// /sandbox/outage, GET and POST /sandbox/faults, POST /sandbox/throttle,
// GET /sandbox/timeline) are enabled when the environment variable
// GATEWAYQ_SANDBOX_ADMIN_TOKEN holds a secret (never a flag: flags show in
// ps), presented as "Authorization: Bearer <secret>":
//
//	curl ... -H "Authorization: Bearer $GATEWAYQ_SANDBOX_ADMIN_TOKEN" \
//	     -X POST 'https://127.0.0.1:4443/sandbox/outage?status=503&for=30s'
//
// The OAuth server (/gateway3/oauth/ on the desktop listener) registers one
// client, --oauth-client-id with the --oauth-redirect-uri list. Its secret
// is GATEWAYQ_SANDBOX_OAUTH_CLIENT_SECRET when set (so workers can be
// given the same one), else generated and printed at startup. The printed
// login URL consents for alice at once (login_hint, a sandbox extension);
// without login_hint a browser gets a page of users to log in as.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatewayq/gatewayq/sandbox"
)

// adminTokenEnv names the environment variable holding Options.AdminToken.
const adminTokenEnv = "GATEWAYQ_SANDBOX_ADMIN_TOKEN"

// oauthSecretEnv names the environment variable holding the OAuth client's
// secret.
const oauthSecretEnv = "GATEWAYQ_SANDBOX_OAUTH_CLIENT_SECRET"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// run parses flags, starts the sandbox, prints where it is, and serves until
// ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dir         = fs.String("dir", "./.run/sandbox", "directory the generated PKI is written to (created 0700)")
		cloudAddr   = fs.String("cloud-addr", "127.0.0.1:4046", "mutual-TLS (cloud) listen address")
		desktopAddr = fs.String("desktop-addr", "127.0.0.1:4443", "one-way TLS (desktop) listen address")
		rps         = fs.Float64("throttle-rps", 0, "requests/s allowed per client certificate (cloud) or IP (desktop); 0 = unlimited")
		burst       = fs.Int("throttle-burst", 1, "throttle burst")
		latency     = fs.Duration("latency", 0, "latency added to every gateway call")
		jitter      = fs.Duration("latency-jitter", 0, "random extra latency, up to this much")
		clients     = fs.Int("clients", 1, "client certificates to mint")
		domain      = fs.String("domain", sandbox.DefaultDomain, "client certificate CN domain: <32 hex>.irdgws.<domain>")
		issuer      = fs.String("m2m-issuer", sandbox.DefaultM2MIssuer, "iss expected in M2M JWTs")
		issueToken  = fs.String("issue-token", "", "print an access token for this myIR user at startup (for curl)")
		tokenTTL    = fs.Duration("token-ttl", sandbox.DefaultTokenTTL, "lifetime of the --issue-token token")
		verbose     = fs.Bool("v", false, "log every call")
		clientID    = fs.String("oauth-client-id", sandbox.DefaultOAuthClientID, "the OAuth client's client_id")
		desktopApp  = fs.Bool("oauth-desktop", false, "register the OAuth client as a desktop app (no refresh tokens)")
		expiresStr  = fs.Bool("oauth-expires-in-string", false, "send expires_in as a JSON string, as IR sometimes does")
		accessTTL   = fs.Duration("access-token-ttl", sandbox.DefaultAccessTokenTTL, "lifetime of OAuth access tokens")
		refreshTTL  = fs.Duration("refresh-token-ttl", sandbox.DefaultRefreshTokenTTL, "lifetime of OAuth refresh tokens")
		codeTTL     = fs.Duration("auth-code-ttl", sandbox.DefaultAuthCodeTTL, "lifetime of OAuth authorization codes")
		faults      sandbox.Faults
		faultSeed   = fs.Uint64("fault-seed", 0, "seed of the fault draws, for reproducible runs; 0 = random")
	)
	fs.Float64Var(&faults.Hang, "fault-hang", 0, "probability a call hangs until the client gives up")
	fs.Float64Var(&faults.Reset, "fault-reset", 0, "probability a call's connection is reset without an answer")
	fs.Float64Var(&faults.HTTP5xx, "fault-5xx", 0, "probability a call is answered 500 or 502")
	fs.Float64Var(&faults.LoseResponse, "fault-lose-response", 0, "probability an accepted File is filed, then its connection reset")
	fs.Float64Var(&faults.HangAfterCommit, "fault-hang-after-commit", 0, "probability an accepted File is filed, then hangs")
	fs.Float64Var(&faults.LoseRefresh, "fault-lose-refresh", 0, "probability an OAuth refresh is honoured (its refresh token spent), then its connection reset")
	var serverNames, redirects stringList
	fs.Var(&serverNames, "server-name", "extra DNS name or IP for the server certificate (repeatable)")
	fs.Var(&redirects, "oauth-redirect-uri", "a redirect URI of the OAuth client (repeatable; default "+sandbox.DefaultOAuthRedirectURI+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if len(redirects) == 0 {
		redirects = stringList{sandbox.DefaultOAuthRedirectURI}
	}
	secret := os.Getenv(oauthSecretEnv)

	s, err := sandbox.New(sandbox.Options{
		Dir:           *dir,
		CloudAddr:     *cloudAddr,
		DesktopAddr:   *desktopAddr,
		ServerNames:   serverNames,
		Domain:        *domain,
		ClientCerts:   *clients,
		Latency:       *latency,
		LatencyJitter: *jitter,
		ThrottleRPS:   *rps,
		ThrottleBurst: *burst,
		M2MIssuer:     *issuer,
		AdminToken:    os.Getenv(adminTokenEnv),
		Faults:        faults,
		FaultSeed:     *faultSeed,
		Logger:        logger,
		OAuthClients: []sandbox.OAuthClient{{ID: *clientID, Secret: secret, RedirectURIs: redirects,
			Desktop: *desktopApp, ExpiresInAsString: *expiresStr}},
		AccessTokenTTL:  *accessTTL,
		RefreshTokenTTL: *refreshTTL,
		AuthCodeTTL:     *codeTTL,
	})
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cloud (mTLS):   %s\ndesktop (TLS):  %s\n", s.CloudURL(), s.DesktopURL())
	if files, ok := s.PKIFiles(); ok {
		fmt.Fprintf(stdout, "CA:             %s\n", files.CA)
		for _, c := range files.Clients {
			fmt.Fprintf(stdout, "client cert:    %s key %s (CN %s)\n", c.Cert, c.Key, c.CN)
		}
		fmt.Fprintf(stdout, "JWT signing:    %s key %s\n", files.SigningCert, files.SigningKey)
	} else {
		fmt.Fprintln(stdout, "PKI:            in memory only (no --dir)")
	}
	fmt.Fprintf(stdout, "JWT sub:        %s\n", s.PKI().SigningThumbprint)
	if faults != (sandbox.Faults{}) {
		fmt.Fprintf(stdout, "faults:         hang %g reset %g 5xx %g lose-response %g hang-after-commit %g lose-refresh %g\n",
			faults.Hang, faults.Reset, faults.HTTP5xx, faults.LoseResponse, faults.HangAfterCommit, faults.LoseRefresh)
	}
	client := s.OAuthClients()[0]
	if secret != "" {
		fmt.Fprintf(stdout, "OAuth client:   %s (secret from %s)\n", client.ID, oauthSecretEnv)
	} else {
		// A throwaway secret of a throwaway server: whoever starts the
		// sandbox needs it to configure a client.
		fmt.Fprintf(stdout, "OAuth client:   %s secret %s\n", client.ID, client.Secret)
	}
	fmt.Fprintf(stdout, "OAuth token:    %s%s\n", s.DesktopURL(), sandbox.OAuthTokenPath)
	login := url.Values{"response_type": {"code"}, "client_id": {client.ID}, "redirect_uri": {client.RedirectURIs[0]},
		"scope": {sandbox.ScopeMYIR}, "state": {"demo"}, "login_hint": {"alice"}}
	fmt.Fprintf(stdout, "OAuth login:    %s%s?%s\n", s.DesktopURL(), sandbox.OAuthAuthorizePath, login.Encode())
	if *issueToken != "" {
		fmt.Fprintf(stdout, "access token for %s: %s\n", *issueToken, s.IssueToken(*issueToken, *tokenTTL))
	}

	<-ctx.Done()
	logger.Info("shutting down")
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("shutdown timed out")
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint([]string(*l)) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
