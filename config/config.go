package config

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of every gatewayq binary. Obtain one with Load
// (file and environment) or Default (a profile's defaults only), then call
// ValidateFor with the binary's Role before using it.
//
// A Config is a plain value: treat it as read-only once loaded, and share it
// between goroutines only for reading. Redacted gives a copy safe to log.
//
// Every field documents its default. "Zero value" notes say what the zero
// value means when it is not simply invalid; a zero value that Validate
// refuses is called out as "required".
type Config struct {
	// Profile chooses the defaults (hosts, ports, log format) and the
	// rules Validate applies: plain http and tls.insecure_skip_verify are
	// allowed only in ProfileSandbox. Default ProfileSandbox. The profile is
	// read from the file's "profile" key or GATEWAYQ_PROFILE (the
	// environment wins) before anything else, because it decides the
	// defaults the file then overrides.
	Profile Profile `yaml:"profile"`

	Redis     Redis     `yaml:"redis"`
	Endpoints Endpoints `yaml:"endpoints"`
	OAuth     OAuth     `yaml:"oauth"`
	TLS       TLS       `yaml:"tls"`
	M2M       M2M       `yaml:"m2m"`
	Tokens    Tokens    `yaml:"tokens"`
	Gateway   Gateway   `yaml:"gateway"`
	Limits    Limits    `yaml:"limits"`
	Breaker   Breaker   `yaml:"breaker"`
	Worker    Worker    `yaml:"worker"`
	Log       Log       `yaml:"log"`
	// Monitoring is the operators' web UI on the worker's health listener.
	Monitoring Monitoring `yaml:"monitoring"`
	// Schedule is the batches the workers enqueue on a cron schedule
	// (config/schedule.go).
	Schedule Schedule `yaml:"schedule"`
	// Ingest is the HTTP ingest API for event triggers (config/ingest.go).
	Ingest Ingest `yaml:"ingest"`
}

// Redis is the Redis that holds the queues (asynq) and gatewayq's shared
// state (limiter, breaker, token sets, results).
type Redis struct {
	// Addr is host:port. Zero value "": in the sandbox profile, the demo
	// runs on an in-process Redis; required in the test and production
	// profiles. Default "".
	Addr string `yaml:"addr"`
	// Username and Password are Redis ACL credentials; empty means none.
	// Prefer GATEWAYQ_REDIS_PASSWORD over writing the password in a file.
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// DB is the logical database number, >= 0. Default 0. Redis Cluster
	// supports only 0.
	DB int `yaml:"db"`
	// Cluster says Addr names nodes of a Redis Cluster: the workers and
	// the CLI discover the others from them, and asynq runs on the
	// cluster. Addr may then list several seed nodes, comma-separated
	// ("redis-1:6379,redis-2:6379"), so that a process can start while one
	// of them is down. gatewayq's own scripts keep each call's keys in one
	// hash slot, so they run unchanged there. DB must be 0. Default false.
	Cluster bool `yaml:"cluster"`
	// KeyPrefix starts every key gatewayq itself writes (asynq uses its own
	// "asynq:" keys). Required; must not contain "{" or "}" because our Lua
	// scripts use hash tags to keep their keys in one Redis Cluster slot.
	// Default "gatewayq:".
	KeyPrefix string `yaml:"key_prefix"`
	// QueuePrefix is put before the queue names (realtime, bulk, redrive)
	// so that several gatewayq environments can share one Redis; workers
	// and producers of one environment must agree on it. Must not contain
	// "{" or "}" (asynq puts queue names in hash tags). Zero value "": the
	// plain names. Default "".
	QueuePrefix string `yaml:"queue_prefix"`
	// DialTimeout bounds connecting to Redis. Required (> 0). Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// Addrs are the addresses Addr names: one, or with Cluster, every seed
// node it lists.
func (r Redis) Addrs() []string {
	if !r.Cluster {
		return []string{r.Addr}
	}
	var as []string
	for a := range strings.SplitSeq(r.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			as = append(as, a)
		}
	}
	return as
}

// Endpoints holds IR's two listeners. Defaults come from the profile.
type Endpoints struct {
	// Cloud is the mutual-TLS listener (port 4046 at IR): the client
	// certificate identifies the DSP. Returns, Employment, Intermediation
	// and the REST APIs.
	Cloud Endpoint `yaml:"cloud"`
	// Desktop is the one-way TLS listener (port 443 at IR): no client
	// certificate, no refresh tokens, tighter throttling.
	Desktop Endpoint `yaml:"desktop"`
}

// Endpoint is one IR listener and the path of each service on it.
type Endpoint struct {
	// BaseURL is scheme://host[:port], with no path, query or fragment.
	// https only, except plain http in the sandbox profile. Required.
	BaseURL string `yaml:"base_url"`
	// MutualTLS makes the client present tls.client_cert/client_key.
	// Default true for Cloud, false for Desktop.
	MutualTLS bool `yaml:"mutual_tls"`
	// The service paths are prefixes: they start and end with "/" and the
	// operation (REST) is appended. Zero value "": the service is not
	// offered on this endpoint (IR has Intermediation and the REST APIs
	// on the cloud listener only).
	ReturnsPath        string `yaml:"returns_path"`
	EmploymentPath     string `yaml:"employment_path"`
	IntermediationPath string `yaml:"intermediation_path"`
	// AccountPath is the Account REST API's base; IR's documents give it
	// both as /gateway/account/ and /secure/gateway/account/, so confirm it
	// during onboarding. Default /gateway/account/ on Cloud.
	AccountPath string `yaml:"account_path"`
}

// OAuth is IR's end-user OAuth 2.0 authorization-code server ("Token
// Auth"), which lives on the one-way TLS (443-style) listener.
type OAuth struct {
	// BaseURL is scheme://host[:port] of the OAuth server, no path.
	// Required. Default from the profile.
	BaseURL string `yaml:"base_url"`
	// The four endpoint paths, each starting with "/". Defaults
	// /gateway3/oauth/{authorize,token,introspect,revoke}.
	AuthorizePath  string `yaml:"authorize_path"`
	TokenPath      string `yaml:"token_path"`
	IntrospectPath string `yaml:"introspect_path"`
	RevokePath     string `yaml:"revoke_path"`
	// ClientID is the client identifier IR issued at onboarding. Zero
	// value "": OAuth is not used (M2M only). Default "".
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates the client (HTTP Basic). Set it from
	// GATEWAYQ_OAUTH_CLIENT_SECRET or ClientSecretFile, not in a file that
	// is checked in. Setting both it and ClientSecretFile is an error.
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// ClientSecretFile is a file holding ClientSecret (surrounding white
	// space trimmed); it must be readable by its owner only (chmod 600).
	// Load reads it into ClientSecret. Default "".
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is the DSP's callback registered with IR for the
	// authorization code. Optional; https only outside the sandbox.
	RedirectURL string `yaml:"redirect_url"`

	secretFrom string // ClientSecretFile, once LoadSecrets has read it
}

// TLS is the client side of the connections to IR.
type TLS struct {
	// ClientCert and ClientKey are PEM files of the mutual-TLS client
	// certificate IR issued (CN <32 hex>.irdgws.<domain>) and its private
	// key. Required when an endpoint has mutual_tls. ClientKey must be
	// readable by its owner only (chmod 600).
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// CABundle is a PEM file of the CAs trusted for IR's (or the
	// sandbox's) server certificates. Zero value "": the system roots.
	CABundle string `yaml:"ca_bundle"`
	// ServerName overrides the name checked in the server certificate.
	// Zero value "": the host of the URL being called.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns off server certificate checks. Refused
	// outside the sandbox profile, and false by default even there: the
	// sandbox writes a CA bundle to trust instead.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// M2M is the machine-to-machine JWT the DSP signs itself for IR's REST APIs.
type M2M struct {
	// SigningKey and SigningCert are PEM files of the key that signs the
	// JWT and the certificate registered with IR for it (its thumbprint is
	// the JWT's "sub"). Separate from the mutual-TLS key. Zero value "":
	// M2M is not used. Set both or neither; SigningKey must be readable by
	// its owner only (chmod 600).
	SigningKey  string `yaml:"signing_key"`
	SigningCert string `yaml:"signing_cert"`
	// Issuer is the "iss" claim agreed with IR. Required when SigningKey
	// is set.
	Issuer string `yaml:"issuer"`
	// Algorithm is the JWS "alg": RS256, RS384, RS512 (RSA key) or ES256,
	// ES384, ES512 (ECDSA P-256, P-384, P-521 key). Default RS256.
	Algorithm string `yaml:"algorithm"`
	// ThumbprintHash is the hash of the signing certificate's DER that
	// forms "sub", upper-case hex: "sha256" or "sha1". IR's own documents
	// disagree, so confirm it during onboarding. Default "sha256".
	ThumbprintHash string `yaml:"thumbprint_hash"`
	// Lifetime is exp - iat of each JWT, in (0, 8h] (IR's maximum).
	// Default 1h.
	Lifetime time.Duration `yaml:"lifetime"`
	// StartLogon is the optional "startLogon" claim. Default "".
	StartLogon string `yaml:"start_logon"`
}

// Tokens is how OAuth token sets are protected at rest in Redis.
type Tokens struct {
	// EncryptionKey is a base64 (standard alphabet, padded or not) AES-256
	// key: it must decode to 32 bytes. Set it from
	// GATEWAYQ_TOKENS_ENCRYPTION_KEY or EncryptionKeyFile. Required by the
	// worker when oauth.client_id is set. Setting both it and
	// EncryptionKeyFile is an error. Use DecodeKey to get the bytes.
	EncryptionKey string `yaml:"encryption_key" secret:"true"`
	// EncryptionKeyFile is a file holding EncryptionKey; owner-only
	// permissions (chmod 600). Load reads it into EncryptionKey.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	// KeyID names the key in each stored token set, so the key can be
	// rotated: 1-32 characters of A-Z a-z 0-9 . _ -. Default "k1".
	KeyID string `yaml:"key_id"`

	keyFrom string // EncryptionKeyFile, once LoadSecrets has read it
}

// Gateway tunes the calls to IR.
type Gateway struct {
	// CallTimeout is the budget of one gateway call; IR's gateway itself
	// gives up after about 60 s. Required (> 0). Default 60s.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// MaxIdleConnsPerHost keeps TLS connections alive between calls; keep
	// it at least worker.concurrency or most calls pay a new handshake.
	// Required (>= 1). Default 20.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host"`
	// SoftwareProvider, SoftwarePlatform and SoftwareRelease fill IR's
	// softwareProviderData header (each 1-50 characters in IR's XSD, no
	// tabs or line breaks). Zero value "": not filled in by gatewayq (the
	// DSP's payload carries them). Default "".
	SoftwareProvider string `yaml:"software_provider"`
	SoftwarePlatform string `yaml:"software_platform"`
	SoftwareRelease  string `yaml:"software_release"`
}

// Limits is the fleet-wide request rate allowed per endpoint. IR publishes
// no numbers: the defaults are cautious starting points, to be agreed with
// IR during onboarding. The fleet adapts below them when IR pushes back.
type Limits struct {
	// Mode is "fleet" (default): one limit per endpoint and client
	// certificate shared by every worker through Redis, adapting to IR's
	// push-back; or "local": each worker process limits only itself with
	// the rates below, for a single-process deployment (and as the
	// benchmark's comparison).
	Mode string `yaml:"mode"`
	// CloudRPS and DesktopRPS are requests per second, > 0: the ceiling
	// of the fleet's rate per endpoint and client certificate. Defaults 10
	// and 2 (50 and 10 in the sandbox profile).
	CloudRPS float64 `yaml:"cloud_rps"`
	// CloudBurst and DesktopBurst are how many requests may go at once
	// after an idle spell, >= 1. Defaults as the RPS, rounded up.
	CloudBurst   int     `yaml:"cloud_burst"`
	DesktopRPS   float64 `yaml:"desktop_rps"`
	DesktopBurst int     `yaml:"desktop_burst"`
	// CloudMaxInFlight and DesktopMaxInFlight cap the calls in flight
	// across the fleet, >= 0; with 60 s calls, concurrency rather than
	// rate can be what IR feels. Zero value: no cap. Defaults 64 and 8.
	CloudMaxInFlight   int `yaml:"cloud_max_in_flight"`
	DesktopMaxInFlight int `yaml:"desktop_max_in_flight"`
	// RealtimeReserve is the share of the rate, in [0, 0.9], that only the
	// realtime queue may use, so a nightly batch cannot starve event
	// triggers. Default 0.2.
	RealtimeReserve float64 `yaml:"realtime_reserve"`
	// DecreaseFactor multiplies the fleet's effective rate on a throttle
	// signal (429, 503, the UnAuthorised fault), in (0, 1). Default 0.5.
	DecreaseFactor float64 `yaml:"decrease_factor"`
	// Recovery is how long the fleet's rate takes, after a throttle signal
	// at the ceiling, to climb back to the rate IR refused; it then lingers
	// there and climbs faster the longer no throttle comes (TCP CUBIC's
	// curve), so a lowered limit is not hit again and again and a raised
	// one is found. > 0. Default 5s.
	Recovery time.Duration `yaml:"recovery"`
	// MinFraction is the floor of the effective rate as a fraction of the
	// ceiling, in (0, 1]. Default 0.05.
	MinFraction float64 `yaml:"min_fraction"`
	// DegradedFraction is the share of the ceiling each worker process
	// allows itself while Redis is unreachable, in (0, 1]: conservative,
	// never unlimited. Default 0.25 (a fleet of four stays at the ceiling).
	DegradedFraction float64 `yaml:"degraded_fraction"`
	// MaxWait is the longest a job waits in process for a permit; a longer
	// wait snoozes the job and frees the worker slot. >= 0. Default 5s.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Limit modes.
const (
	LimitFleet = "fleet"
	LimitLocal = "local"
)

// Breaker is the fleet-wide circuit breaker per endpoint: each worker
// counts its own calls, and one worker tripping opens the breaker for the
// whole fleet through Redis.
type Breaker struct {
	// FailureRatio of calls in the window that trips the breaker, in
	// (0, 1]. Default 0.5.
	FailureRatio float64 `yaml:"failure_ratio"`
	// MinRequests in the window before the ratio counts, >= 1. Default 20.
	MinRequests int `yaml:"min_requests"`
	// ConsecutiveFailures trips a worker's breaker after that many failed
	// calls in a row, whatever the ratio, so an outage is noticed at once
	// rather than when the window's earlier successes have aged out. >= 0;
	// zero value: off. Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Window is the rolling window of a worker's counts, > 0. Default 10s.
	Window time.Duration `yaml:"window"`
	// OpenFor is how long the fleet stops calling before probing, > 0.
	// Default 15s.
	OpenFor time.Duration `yaml:"open_for"`
	// HalfOpenProbes is how many probe calls the whole fleet makes at once
	// while half-open, >= 1. Default 1.
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// Worker configures the asynq server of the worker daemon.
type Worker struct {
	// Concurrency is the number of jobs one worker process runs at once,
	// >= 1. Default 20.
	Concurrency int `yaml:"concurrency"`
	// Queues maps queue name to priority (> 0); names are QueueRealtime,
	// QueueBulk and QueueRedrive. A file or GATEWAYQ_WORKER_QUEUES
	// replaces the whole map, it does not merge. Default realtime:6,
	// bulk:3, redrive:1.
	Queues Queues `yaml:"queues"`
	// StrictPriority serves a lower queue only when the higher ones are
	// empty. Zero value false: weighted by priority, so a long batch
	// still moves while event triggers keep arriving. Default false.
	StrictPriority bool `yaml:"strict_priority"`
	// ShutdownTimeout is how long a stopping worker waits for jobs in
	// flight; it must be longer than gateway.call_timeout, or a call in
	// progress is cut off and its outcome becomes uncertain. Zero value:
	// gateway.call_timeout + 30s (worked out after the file and the
	// environment are applied). Default 0, so 90s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxRetry is how many times a failing job is retried before it is
	// archived, >= 0 (throttle and breaker delays don't count). Default 25.
	MaxRetry int `yaml:"max_retry"`
	// ResultRetention is how long finished jobs and their results are
	// kept for reports and re-drives, > 0. Default 168h (7 days).
	ResultRetention time.Duration `yaml:"result_retention"`
	// ReportRetention is how long the failure index (every archived job,
	// with its payload, for re-drives), batch membership (for `enqueue
	// batch status` and the morning report) and the re-drive audit are
	// kept, > 0. Unlike asynq's archive, the failure index holds no
	// 10,000-task cap. Default 720h (30 days).
	ReportRetention time.Duration `yaml:"report_retention"`
	// HealthAddr is the host:port of the health and metrics listener.
	// Required. Default ":8080".
	HealthAddr string `yaml:"health_addr"`
	// HealthCert and HealthKey are PEM files of a certificate (with any
	// intermediates after it) and its key (owner-only): set both to serve
	// the health listener (health, /metrics, the monitoring UI) over TLS
	// 1.2+, so that the UI's Basic credentials and what it shows never
	// cross the network in the clear. Probes and Prometheus then use
	// https. SIGHUP reloads them. Zero values "": plain HTTP. Default "".
	HealthCert string `yaml:"health_cert"`
	HealthKey  string `yaml:"health_key"`
	// AdminOnly runs the process for its listeners alone (health,
	// /metrics, the monitoring UI, the ingest API) and the nightly
	// scheduler: it takes no jobs (no asynq server, no reaper), so an
	// operators' UI or a front door can be scaled, restarted or given
	// little CPU without touching the fleet's filings. Default false.
	AdminOnly bool `yaml:"admin_only"`
}

// Monitoring is the operators' web UI (asynqmon: queues, tasks, failures)
// that a worker serves under /monitoring on worker.health_addr, behind HTTP
// Basic authentication. Basic sends the password with every request: serve
// the listener over TLS (worker.health_cert), or put it on a private
// network or behind a TLS-terminating proxy.
type Monitoring struct {
	// Enabled mounts the UI. Zero value false: not served. Default false.
	Enabled bool `yaml:"enabled"`
	// Username is the HTTP Basic user name: required when enabled, no ":"
	// or control characters. Default "admin".
	Username string `yaml:"username"`
	// Password is the HTTP Basic password, at least 12 characters: required
	// when enabled (by it or PasswordFile). Set it from
	// GATEWAYQ_MONITORING_PASSWORD or PasswordFile, not in a file that is
	// checked in. Setting both it and PasswordFile is an error. Default "".
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is a file holding Password (surrounding white space
	// trimmed); owner-only permissions (chmod 600). Load reads it into
	// Password. Default "".
	PasswordFile string `yaml:"password_file"`
	// ReadOnly lets operators look but not act: asynqmon hides its buttons
	// and gatewayq refuses every request but GET and HEAD. Set it to false
	// to allow deleting, running and archiving tasks and pausing queues
	// from the UI. Default true.
	ReadOnly bool `yaml:"read_only"`
	// ShowPayloads shows jobs' bodies (returns, with their figures) and
	// IR's responses to look-ups in the UI. Zero value false: they are
	// replaced by their sizes; the UI still shows each job's service,
	// operation, natural key (the IRD number among it), batch, state and
	// error. Default false.
	ShowPayloads bool `yaml:"show_payloads"`

	passwordFrom string // PasswordFile, once LoadSecrets has read it
}

// MinMonitoringPassword is the shortest monitoring.password Validate
// accepts: the UI can show every job's payload, and with read_only off,
// delete jobs.
const MinMonitoringPassword = 12

// Log configures the binaries' slog handler.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text in the sandbox profile, json in
	// test and production.
	Format string `yaml:"format"`
}

// SlogLevel returns Level as a slog.Level; an unknown level (which Validate
// refuses) is info.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// The queue names the worker serves, from the highest default priority.
const (
	QueueRealtime = "realtime" // event triggers, single jobs
	QueueBulk     = "bulk"     // nightly batches
	QueueRedrive  = "redrive"  // operator re-drives
)

// QueueNames lists the allowed queue names.
func QueueNames() []string { return []string{QueueRealtime, QueueBulk, QueueRedrive} }

// Queues maps a queue name to its priority. In YAML it is a mapping; in the
// environment, a list like "realtime:6,bulk:3,redrive:1". Either replaces
// the map rather than merging into the defaults, so a queue can be dropped.
type Queues map[string]int

// UnmarshalText parses "name:priority,name:priority". Names and priorities
// are checked by Validate, so that every bad entry is reported at once;
// here only the shape is.
func (q *Queues) UnmarshalText(text []byte) error {
	m := Queues{}
	s := strings.TrimSpace(string(text))
	if s == "" {
		*q = m
		return nil
	}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		name, prio, ok := strings.Cut(entry, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("bad entry %q (want name:priority, e.g. realtime:6)", entry)
		}
		n, err := strconv.Atoi(strings.TrimSpace(prio))
		if err != nil {
			return fmt.Errorf("bad priority in %q: not an integer", entry)
		}
		if _, dup := m[name]; dup {
			return fmt.Errorf("queue %q given twice", name)
		}
		m[name] = n
	}
	*q = m
	return nil
}

// String formats the map as UnmarshalText reads it, names sorted.
func (q Queues) String() string {
	names := slices.Sorted(maps.Keys(q))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + strconv.Itoa(q[n])
	}
	return strings.Join(parts, ",")
}

// clone returns an independent copy (nil stays nil).
func (q Queues) clone() Queues {
	if q == nil {
		return nil
	}
	return maps.Clone(q)
}
