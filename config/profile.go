package config

import (
	"fmt"
	"time"
)

// Profile names a set of defaults and rules: where IR (or the sandbox) is,
// and how strict Validate is.
type Profile string

const (
	// ProfileSandbox talks to the gatewayq sandbox on this machine. Plain
	// http and tls.insecure_skip_verify are allowed; redis.addr may be
	// empty (in-process Redis for the demo).
	ProfileSandbox Profile = "sandbox"
	// ProfileTest talks to IR's test environment.
	ProfileTest Profile = "test"
	// ProfileProduction talks to IR's production environment.
	ProfileProduction Profile = "production"
)

// Profiles lists the known profiles.
func Profiles() []Profile { return []Profile{ProfileSandbox, ProfileTest, ProfileProduction} }

// Valid reports whether p is a known profile.
func (p Profile) Valid() bool {
	switch p {
	case ProfileSandbox, ProfileTest, ProfileProduction:
		return true
	}
	return false
}

func (p Profile) String() string { return string(p) }

// The IR service paths, the same in every IR environment (and served by
// the sandbox on both its listeners).
const (
	cloudReturnsPath        = "/gateway/gws/returns/"
	cloudEmploymentPath     = "/gateway/gws/employment/v2/"
	cloudIntermediationPath = "/secure/gateway/gws/intermediation/"
	cloudAccountPath        = "/gateway/account/"
	desktopReturnsPath      = "/gateway2/gws/returns/"
	desktopEmploymentPath   = "/gateway2/gws/employment/v2/"
)

// hosts is where each profile's listeners are: the only place in gatewayq
// that names a host.
type hosts struct {
	cloud, desktop, oauth string
}

var profileHosts = map[Profile]hosts{
	// The sandbox's desktop (and OAuth) listener uses 4443 rather than
	// IR's 443, because binding a port below 1024 needs root or
	// CAP_NET_BIND_SERVICE on a laptop or in CI.
	ProfileSandbox: {
		cloud:   "https://127.0.0.1:4046",
		desktop: "https://127.0.0.1:4443",
		oauth:   "https://127.0.0.1:4443",
	},
	// IR's published endpoints (Gateway_Services-Access, "URL endpoints for
	// SOAP services": test5.services.ird.govt.nz for testing,
	// services.ird.govt.nz for production; cloud on :4046 with mutual
	// TLS, native desktop on 443). IR notes they may change and that its
	// onboarding team names the OAuth host to use during testing: confirm
	// all three during onboarding and override them in the file if needed.
	ProfileTest: {
		cloud:   "https://test5.services.ird.govt.nz:4046",
		desktop: "https://test5.services.ird.govt.nz",
		oauth:   "https://test5.services.ird.govt.nz",
	},
	ProfileProduction: {
		cloud:   "https://services.ird.govt.nz:4046",
		desktop: "https://services.ird.govt.nz",
		oauth:   "https://services.ird.govt.nz",
	},
}

// Default returns profile p's complete defaults, with derived values
// (worker.shutdown_timeout) worked out. For an unknown profile it returns the
// sandbox defaults with Profile set to p, so that Validate names the bad
// profile rather than a dozen fields that follow from it.
func Default(p Profile) *Config {
	c := defaults(p)
	c.finish()
	return c
}

// defaults is Default without the derived values, which Load works out
// only after the file and the environment are applied.
func defaults(p Profile) *Config {
	h, ok := profileHosts[p]
	if !ok {
		h = profileHosts[ProfileSandbox]
	}
	c := &Config{
		Profile: p,
		Redis: Redis{
			KeyPrefix:   "gatewayq:",
			DialTimeout: 5 * time.Second,
		},
		Endpoints: Endpoints{
			Cloud: Endpoint{
				BaseURL:            h.cloud,
				MutualTLS:          true,
				ReturnsPath:        cloudReturnsPath,
				EmploymentPath:     cloudEmploymentPath,
				IntermediationPath: cloudIntermediationPath,
				AccountPath:        cloudAccountPath,
			},
			Desktop: Endpoint{
				BaseURL:        h.desktop,
				ReturnsPath:    desktopReturnsPath,
				EmploymentPath: desktopEmploymentPath,
			},
		},
		OAuth: OAuth{
			BaseURL:        h.oauth,
			AuthorizePath:  "/gateway3/oauth/authorize",
			TokenPath:      "/gateway3/oauth/token",
			IntrospectPath: "/gateway3/oauth/introspect",
			RevokePath:     "/gateway3/oauth/revoke",
		},
		M2M: M2M{
			Algorithm:      "RS256",
			ThumbprintHash: "sha256",
			Lifetime:       time.Hour,
		},
		Tokens: Tokens{KeyID: "k1"},
		Gateway: Gateway{
			CallTimeout:         60 * time.Second,
			MaxIdleConnsPerHost: 20,
		},
		Limits: Limits{Mode: LimitFleet, CloudRPS: 10, CloudBurst: 10, DesktopRPS: 2, DesktopBurst: 2,
			CloudMaxInFlight: 64, DesktopMaxInFlight: 8, RealtimeReserve: 0.2, DecreaseFactor: 0.5,
			Recovery: 5 * time.Second, MinFraction: 0.05, DegradedFraction: 0.25, MaxWait: 5 * time.Second},
		Breaker: Breaker{FailureRatio: 0.5, MinRequests: 20, ConsecutiveFailures: 5, Window: 10 * time.Second, OpenFor: 15 * time.Second, HalfOpenProbes: 1},
		Worker: Worker{
			Concurrency:     20,
			Queues:          Queues{QueueRealtime: 6, QueueBulk: 3, QueueRedrive: 1},
			MaxRetry:        25,
			ResultRetention: 7 * 24 * time.Hour,
			ReportRetention: 30 * 24 * time.Hour,
			HealthAddr:      ":8080",
		},
		Log:        Log{Level: "info", Format: "json"},
		Monitoring: Monitoring{Username: "admin", ReadOnly: true},
		Ingest:     Ingest{Addr: DefaultIngestAddr, MaxBodyBytes: DefaultIngestBody, MaxJobs: DefaultIngestJobs},
		Schedule:   Schedule{CatchUp: 6 * time.Hour, Lease: time.Minute, History: 30 * 24 * time.Hour},
	}
	if p == ProfileSandbox || !ok {
		// The sandbox throttles per its own settings; higher defaults keep
		// the demo brisk. Logs are read by a person, not a collector.
		c.Limits.CloudRPS, c.Limits.CloudBurst, c.Limits.DesktopRPS, c.Limits.DesktopBurst = 50, 50, 10, 10
		c.Log.Format = "text"
	}
	return c
}

// shutdownGrace is added to gateway.call_timeout when
// worker.shutdown_timeout is left at zero: long enough for a call that
// started just before the signal to finish and its outcome to be recorded.
const shutdownGrace = 30 * time.Second

// finish works out the derived defaults once every layer is applied.
func (c *Config) finish() {
	if c.Worker.ShutdownTimeout == 0 && c.Gateway.CallTimeout > 0 {
		c.Worker.ShutdownTimeout = c.Gateway.CallTimeout + shutdownGrace
	}
}

func unknownProfileError(p Profile) error {
	return fmt.Errorf("unknown profile %q (want sandbox, test or production)", string(p))
}
