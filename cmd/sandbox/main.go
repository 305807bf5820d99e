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

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatewayq/gatewayq/sandbox"
)

// adminTokenEnv names the environment variable holding Options.AdminToken.
const adminTokenEnv = "GATEWAYQ_SANDBOX_ADMIN_TOKEN"

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
		faults      sandbox.Faults
		faultSeed   = fs.Uint64("fault-seed", 0, "seed of the fault draws, for reproducible runs; 0 = random")
	)
	fs.Float64Var(&faults.Hang, "fault-hang", 0, "probability a call hangs until the client gives up")
	fs.Float64Var(&faults.Reset, "fault-reset", 0, "probability a call's connection is reset without an answer")
	fs.Float64Var(&faults.HTTP5xx, "fault-5xx", 0, "probability a call is answered 500 or 502")
	fs.Float64Var(&faults.LoseResponse, "fault-lose-response", 0, "probability an accepted File is filed, then its connection reset")
	fs.Float64Var(&faults.HangAfterCommit, "fault-hang-after-commit", 0, "probability an accepted File is filed, then hangs")
	var serverNames stringList
	fs.Var(&serverNames, "server-name", "extra DNS name or IP for the server certificate (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

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
		fmt.Fprintf(stdout, "faults:         hang %g reset %g 5xx %g lose-response %g hang-after-commit %g\n",
			faults.Hang, faults.Reset, faults.HTTP5xx, faults.LoseResponse, faults.HangAfterCommit)
	}
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
