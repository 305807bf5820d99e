package config

import (
	"crypto/elliptic"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestValidateFields checks each field rule on its own (the table) and
// that several bad fields are reported together. RoleEnqueue keeps the
// file system out of it.
func TestValidateFields(t *testing.T) {
	t.Parallel()

	base := func() *Config {
		c := Default(ProfileProduction)
		c.Redis.Addr = "redis.internal:6379"
		return c
	}
	tests := []struct {
		name    string
		profile Profile // default production
		mutate  func(c *Config)
		fields  []string // sorted; nil means valid
	}{
		{name: "defaults with a redis address are valid", mutate: func(c *Config) {}},
		{name: "sandbox defaults are valid without redis", profile: ProfileSandbox, mutate: func(c *Config) { c.Redis.Addr = "" }},
		{name: "test defaults are valid", profile: ProfileTest, mutate: func(c *Config) {}},

		{name: "unknown profile", mutate: func(c *Config) { c.Profile = "prod" }, fields: []string{"profile"}},
		{name: "redis addr required outside sandbox", mutate: func(c *Config) { c.Redis.Addr = "" }, fields: []string{"redis.addr"}},
		{name: "redis addr without port", mutate: func(c *Config) { c.Redis.Addr = "redis.internal" }, fields: []string{"redis.addr"}},
		{name: "redis addr as a URL", mutate: func(c *Config) { c.Redis.Addr = "redis://u:p@h:6379" }, fields: []string{"redis.addr"}},
		{name: "redis db negative", mutate: func(c *Config) { c.Redis.DB = -1 }, fields: []string{"redis.db"}},
		{name: "redis cluster has only db 0", mutate: func(c *Config) { c.Redis.Cluster, c.Redis.DB = true, 2 }, fields: []string{"redis.db"}},
		{name: "redis cluster needs a node", mutate: func(c *Config) { c.Redis.Cluster, c.Redis.Addr = true, "" }, fields: []string{"redis.addr"}},
		{name: "redis cluster needs a node, not just commas", mutate: func(c *Config) { c.Redis.Cluster, c.Redis.Addr = true, " , " }, fields: []string{"redis.addr"}},
		{name: "redis cluster takes several seed nodes", mutate: func(c *Config) { c.Redis.Cluster, c.Redis.Addr = true, "r1:6379, r2:6379" }},
		{name: "every redis cluster seed node is checked", mutate: func(c *Config) { c.Redis.Cluster, c.Redis.Addr = true, "r1:6379,r2" }, fields: []string{"redis.addr"}},
		{name: "health cert without its key", mutate: func(c *Config) { c.Worker.HealthCert = "/etc/gatewayq/health.crt" }, fields: []string{"worker.health_cert"}},
		{name: "health key without its cert", mutate: func(c *Config) { c.Worker.HealthKey = "/etc/gatewayq/health.key" }, fields: []string{"worker.health_cert"}},
		{name: "health cert and key together", mutate: func(c *Config) {
			c.Worker.HealthCert, c.Worker.HealthKey = "/etc/gatewayq/health.crt", "/etc/gatewayq/health.key"
		}},
		{name: "a list of nodes needs redis cluster", mutate: func(c *Config) { c.Redis.Addr = "r1:6379,r2:6379" }, fields: []string{"redis.addr"}},
		{name: "redis key prefix empty", mutate: func(c *Config) { c.Redis.KeyPrefix = "" }, fields: []string{"redis.key_prefix"}},
		{name: "redis key prefix with hash tag", mutate: func(c *Config) { c.Redis.KeyPrefix = "{gq}:" }, fields: []string{"redis.key_prefix"}},
		{name: "redis queue prefix with hash tag", mutate: func(c *Config) { c.Redis.QueuePrefix = "a}b:" }, fields: []string{"redis.queue_prefix"}},
		{name: "unknown limit mode", mutate: func(c *Config) { c.Limits.Mode = "global" }, fields: []string{"limits.mode"}},
		{name: "negative in-flight cap", mutate: func(c *Config) { c.Limits.CloudMaxInFlight = -1 }, fields: []string{"limits.cloud_max_in_flight"}},
		{name: "adaptive fractions out of range", mutate: func(c *Config) {
			c.Limits.RealtimeReserve, c.Limits.DecreaseFactor, c.Limits.Recovery, c.Limits.MinFraction, c.Limits.DegradedFraction = 1, 1, 0, 0, 2
		}, fields: []string{"limits.decrease_factor", "limits.degraded_fraction", "limits.min_fraction", "limits.realtime_reserve", "limits.recovery"}},
		{name: "breaker settings", mutate: func(c *Config) {
			c.Breaker = Breaker{FailureRatio: 0, MinRequests: 0, Window: 0, OpenFor: 0, HalfOpenProbes: 0}
		}, fields: []string{"breaker.failure_ratio", "breaker.half_open_probes", "breaker.min_requests", "breaker.open_for", "breaker.window"}},
		{name: "redis dial timeout zero", mutate: func(c *Config) { c.Redis.DialTimeout = 0 }, fields: []string{"redis.dial_timeout"}},

		{name: "base url missing", mutate: func(c *Config) { c.Endpoints.Cloud.BaseURL = "" }, fields: []string{"endpoints.cloud.base_url"}},
		{name: "base url with path", mutate: func(c *Config) { c.Endpoints.Cloud.BaseURL = "https://h:4046/gateway" }, fields: []string{"endpoints.cloud.base_url"}},
		{name: "base url with slash", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "https://h/" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url with query", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "https://h?x=1" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url without host", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "https://:443" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url bad port", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "https://h:99999" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url with credentials", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "https://u:p@h" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url not a URL", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "::nope" }, fields: []string{"endpoints.desktop.base_url"}},
		{name: "base url ftp", mutate: func(c *Config) { c.OAuth.BaseURL = "ftp://h" }, fields: []string{"oauth.base_url"}},
		{name: "http outside sandbox", mutate: func(c *Config) { c.Endpoints.Desktop.BaseURL = "http://h:8080" }, fields: []string{"endpoints.desktop.base_url"}},
		{
			name: "http in sandbox, but not with mutual TLS", profile: ProfileSandbox,
			mutate: func(c *Config) {
				c.Endpoints.Desktop.BaseURL = "http://127.0.0.1:8080"
				c.OAuth.BaseURL = "http://127.0.0.1:8080"
				c.Endpoints.Cloud.BaseURL = "http://127.0.0.1:4046"
			},
			fields: []string{"endpoints.cloud.mutual_tls"},
		},
		{name: "path without trailing slash", mutate: func(c *Config) { c.Endpoints.Cloud.ReturnsPath = "/gateway/gws/returns" }, fields: []string{"endpoints.cloud.returns_path"}},
		{name: "path without leading slash", mutate: func(c *Config) { c.Endpoints.Desktop.EmploymentPath = "gateway2/gws/employment/v2/" }, fields: []string{"endpoints.desktop.employment_path"}},
		{name: "path with query", mutate: func(c *Config) { c.Endpoints.Cloud.AccountPath = "/gateway/account/?x" }, fields: []string{"endpoints.cloud.account_path"}},
		{name: "path with double slash", mutate: func(c *Config) { c.Endpoints.Cloud.IntermediationPath = "/secure//gws/" }, fields: []string{"endpoints.cloud.intermediation_path"}},
		{name: "empty path means not offered", mutate: func(c *Config) { c.Endpoints.Cloud.AccountPath = "" }},

		{name: "oauth path missing", mutate: func(c *Config) { c.OAuth.TokenPath = "" }, fields: []string{"oauth.token_path"}},
		{name: "oauth path relative", mutate: func(c *Config) { c.OAuth.RevokePath = "gateway3/oauth/revoke" }, fields: []string{"oauth.revoke_path"}},
		{name: "redirect url http outside sandbox", mutate: func(c *Config) { c.OAuth.RedirectURL = "http://dsp.example/cb" }, fields: []string{"oauth.redirect_url"}},
		{name: "redirect url with path is fine", mutate: func(c *Config) { c.OAuth.RedirectURL = "https://dsp.example/cb?x=1" }},

		{name: "insecure skip verify in production", mutate: func(c *Config) { c.TLS.InsecureSkipVerify = true }, fields: []string{"tls.insecure_skip_verify"}},
		{name: "insecure skip verify in test", profile: ProfileTest, mutate: func(c *Config) { c.TLS.InsecureSkipVerify = true }, fields: []string{"tls.insecure_skip_verify"}},
		{name: "insecure skip verify in sandbox", profile: ProfileSandbox, mutate: func(c *Config) { c.TLS.InsecureSkipVerify = true }},

		{name: "m2m algorithm", mutate: func(c *Config) { c.M2M.Algorithm = "HS256" }, fields: []string{"m2m.algorithm"}},
		{name: "m2m algorithm lower case", mutate: func(c *Config) { c.M2M.Algorithm = "rs256" }, fields: []string{"m2m.algorithm"}},
		{name: "m2m thumbprint hash", mutate: func(c *Config) { c.M2M.ThumbprintHash = "md5" }, fields: []string{"m2m.thumbprint_hash"}},
		{name: "m2m sha1 thumbprint allowed", mutate: func(c *Config) { c.M2M.ThumbprintHash = "sha1" }},
		{name: "m2m lifetime zero", mutate: func(c *Config) { c.M2M.Lifetime = 0 }, fields: []string{"m2m.lifetime"}},
		{name: "m2m lifetime over 8h", mutate: func(c *Config) { c.M2M.Lifetime = 8*time.Hour + time.Second }, fields: []string{"m2m.lifetime"}},
		{name: "m2m lifetime exactly 8h", mutate: func(c *Config) { c.M2M.Lifetime = 8 * time.Hour }},
		{name: "m2m key needs issuer and cert", mutate: func(c *Config) { c.M2M.SigningKey = "k.pem" }, fields: []string{"m2m.issuer", "m2m.signing_cert"}},
		{name: "m2m cert needs key", mutate: func(c *Config) { c.M2M.SigningCert = "c.pem" }, fields: []string{"m2m.signing_key"}},

		{name: "tokens key not base64", mutate: func(c *Config) { c.Tokens.EncryptionKey = "not base64!" }, fields: []string{"tokens.encryption_key"}},
		{name: "tokens key too short", mutate: func(c *Config) { c.Tokens.EncryptionKey = "c2hvcnQ=" }, fields: []string{"tokens.encryption_key"}},
		{name: "tokens key unpadded", mutate: func(c *Config) { c.Tokens.EncryptionKey = strings.TrimRight(testKey, "=") }},
		{name: "tokens key id", mutate: func(c *Config) { c.Tokens.KeyID = "key one" }, fields: []string{"tokens.key_id"}},
		{name: "tokens key id empty", mutate: func(c *Config) { c.Tokens.KeyID = "" }, fields: []string{"tokens.key_id"}},

		{name: "call timeout zero", mutate: func(c *Config) { c.Gateway.CallTimeout = 0 }, fields: []string{"gateway.call_timeout"}},
		{name: "idle conns zero", mutate: func(c *Config) { c.Gateway.MaxIdleConnsPerHost = 0 }, fields: []string{"gateway.max_idle_conns_per_host"}},
		{name: "software provider too long", mutate: func(c *Config) { c.Gateway.SoftwareProvider = strings.Repeat("x", 51) }, fields: []string{"gateway.software_provider"}},
		{name: "software release with newline", mutate: func(c *Config) { c.Gateway.SoftwareRelease = "1.0\n" }, fields: []string{"gateway.software_release"}},
		{name: "software platform 50 runes", mutate: func(c *Config) { c.Gateway.SoftwarePlatform = strings.Repeat("ā", 50) }},

		{name: "rates", mutate: func(c *Config) { c.Limits.CloudRPS = 0; c.Limits.DesktopRPS = math.Inf(1) }, fields: []string{"limits.cloud_rps", "limits.desktop_rps"}},
		{name: "rate NaN", mutate: func(c *Config) { c.Limits.CloudRPS = math.NaN() }, fields: []string{"limits.cloud_rps"}},
		{name: "bursts", mutate: func(c *Config) { c.Limits.CloudBurst = 0; c.Limits.DesktopBurst = -1 }, fields: []string{"limits.cloud_burst", "limits.desktop_burst"}},

		{name: "concurrency zero", mutate: func(c *Config) { c.Worker.Concurrency = 0 }, fields: []string{"worker.concurrency"}},
		{name: "no queues", mutate: func(c *Config) { c.Worker.Queues = nil }, fields: []string{"worker.queues"}},
		{name: "unknown queue and bad priority", mutate: func(c *Config) { c.Worker.Queues = Queues{"bulky": 1, QueueBulk: 0, QueueRealtime: 1} }, fields: []string{"worker.queues.bulk", "worker.queues.bulky"}},
		{name: "shutdown equal to call timeout", mutate: func(c *Config) { c.Worker.ShutdownTimeout = c.Gateway.CallTimeout }, fields: []string{"worker.shutdown_timeout"}},
		{name: "shutdown zero with bad call timeout", mutate: func(c *Config) { c.Gateway.CallTimeout = 0; c.Worker.ShutdownTimeout = 0 }, fields: []string{"gateway.call_timeout", "worker.shutdown_timeout"}},
		{name: "max retry negative", mutate: func(c *Config) { c.Worker.MaxRetry = -1 }, fields: []string{"worker.max_retry"}},
		{name: "max retry zero allowed", mutate: func(c *Config) { c.Worker.MaxRetry = 0 }},
		{name: "result retention zero", mutate: func(c *Config) { c.Worker.ResultRetention = 0 }, fields: []string{"worker.result_retention"}},
		{name: "health addr empty", mutate: func(c *Config) { c.Worker.HealthAddr = "" }, fields: []string{"worker.health_addr"}},
		{name: "health addr no port", mutate: func(c *Config) { c.Worker.HealthAddr = "localhost" }, fields: []string{"worker.health_addr"}},

		{name: "log level", mutate: func(c *Config) { c.Log.Level = "verbose" }, fields: []string{"log.level"}},
		{name: "log format", mutate: func(c *Config) { c.Log.Format = "xml" }, fields: []string{"log.format"}},

		{
			name: "several fields at once",
			mutate: func(c *Config) {
				c.Redis.Addr = ""
				c.TLS.InsecureSkipVerify = true
				c.M2M.Lifetime = 9 * time.Hour
				c.Gateway.CallTimeout = 2 * time.Minute
				c.Worker.ShutdownTimeout = time.Minute
				c.Worker.Concurrency = 0
				c.Log.Level = ""
			},
			fields: []string{"log.level", "m2m.lifetime", "redis.addr", "tls.insecure_skip_verify", "worker.concurrency", "worker.shutdown_timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			if tt.profile != "" {
				c = Default(tt.profile)
				c.Redis.Addr = "redis.internal:6379"
			}
			tt.mutate(c)
			err := c.ValidateFor(RoleEnqueue)
			if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q\n%v", got, tt.fields, err)
			}
			// Every problem is a *FieldError whose text starts with its field.
			for _, f := range Fields(err) {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error text does not name %s: %v", f, err)
				}
			}
		})
	}
}

func TestValidateNeverEchoesTheKey(t *testing.T) {
	t.Parallel()
	c := Default(ProfileSandbox)
	const bad = "c2VjcmV0LWtleS10aGF0LWlzLXRvby1zaG9ydA=="
	c.Tokens.EncryptionKey = bad
	err := c.ValidateFor(RoleEnqueue)
	if got := Fields(err); !slices.Equal(got, []string{"tokens.encryption_key"}) {
		t.Fatalf("fields = %q", got)
	}
	assertNoSecret(t, err, bad, "secret-key")
}

func TestValidateWorkerFiles(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		mutate func(t *testing.T, c *Config, dir string)
		fields []string
		is     error
		text   []string
	}{
		{name: "all files in order", mutate: func(*testing.T, *Config, string) {}},
		{
			name:   "mutual TLS needs the client pair",
			mutate: func(_ *testing.T, c *Config, _ string) { c.TLS.ClientCert, c.TLS.ClientKey = "", "" },
			fields: []string{"tls.client_cert", "tls.client_key"},
		},
		{
			name: "no mutual TLS, no client pair needed",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.Endpoints.Cloud.MutualTLS = false
				c.TLS.ClientCert, c.TLS.ClientKey = "", ""
			},
		},
		{
			name: "client key readable by others",
			mutate: func(t *testing.T, c *Config, _ string) {
				if err := os.Chmod(c.TLS.ClientKey, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			fields: []string{"tls.client_key"},
			is:     ErrKeyFileMode,
			text:   []string{"0644", "chmod 600", "client.key"},
		},
		{
			name: "signing key readable by group",
			mutate: func(t *testing.T, c *Config, _ string) {
				if err := os.Chmod(c.M2M.SigningKey, 0o640); err != nil {
					t.Fatal(err)
				}
			},
			fields: []string{"m2m.signing_key"},
			is:     ErrKeyFileMode,
		},
		{
			name:   "missing certificate",
			mutate: func(_ *testing.T, c *Config, dir string) { c.TLS.ClientCert = filepath.Join(dir, "missing.crt") },
			fields: []string{"tls.client_cert"},
			is:     os.ErrNotExist,
		},
		{
			name: "key of another certificate",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.TLS.ClientKey = writeFile(t, dir, "other.key", ecPair(elliptic.P256()).key, 0o600)
			},
			fields: []string{"tls.client_key"},
		},
		{
			name: "certificate file that is not PEM",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.TLS.ClientCert = writeFile(t, dir, "junk.crt", []byte("junk"), 0o644)
			},
			fields: []string{"tls.client_cert"},
		},
		{
			name: "CA bundle without certificates",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.TLS.CABundle = writeFile(t, dir, "empty.pem", []byte("\n"), 0o644)
			},
			fields: []string{"tls.ca_bundle"},
		},
		{
			name:   "RSA algorithm with an ECDSA signing key",
			mutate: func(_ *testing.T, c *Config, _ string) { c.M2M.Algorithm = "RS256" },
			fields: []string{"m2m.algorithm"},
			text:   []string{"RS256 needs an RSA key"},
		},
		{
			name:   "curve does not fit the algorithm",
			mutate: func(_ *testing.T, c *Config, _ string) { c.M2M.Algorithm = "ES384" },
			fields: []string{"m2m.algorithm"},
			text:   []string{"P-384"},
		},
		{
			name: "ECDSA algorithm with an RSA signing key",
			mutate: func(t *testing.T, c *Config, dir string) {
				p := rsaPair()
				c.M2M.SigningCert = writeFile(t, dir, "rsa.crt", p.cert, 0o644)
				c.M2M.SigningKey = writeFile(t, dir, "rsa.key", p.key, 0o600)
			},
			fields: []string{"m2m.algorithm"},
		},
		{
			name: "OAuth client needs its secret and the tokens key",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.OAuth.ClientSecret = ""
				c.Tokens.EncryptionKey = ""
			},
			fields: []string{"oauth.client_secret", "tokens.encryption_key"},
		},
		{
			name: "no OAuth client, no secrets needed",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.OAuth.ClientID, c.OAuth.ClientSecret, c.Tokens.EncryptionKey = "", "", ""
			},
		},
		{
			name: "secret file set in code but never read",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.Tokens.EncryptionKey = ""
				c.Tokens.EncryptionKeyFile = writeFile(t, dir, "tokens.key", []byte(testKey), 0o600)
			},
			fields: []string{"tokens.encryption_key_file"},
			text:   []string{"LoadSecrets"},
		},
		{
			name: "secret file too open",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.OAuth.ClientSecret = ""
				c.OAuth.ClientSecretFile = writeFile(t, dir, "secret", []byte("s"), 0o604)
			},
			fields: []string{"oauth.client_secret_file"},
			is:     ErrKeyFileMode,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, dir := withFiles(t)
			tt.mutate(t, c, dir)
			err := c.Validate()
			if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q\n%v", got, tt.fields, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v: %v", tt.is, err)
			}
			for _, s := range tt.text {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			assertNoSecret(t, err, c.OAuth.ClientSecret, c.Tokens.EncryptionKey)
			// None of this concerns a producer.
			if err := c.ValidateFor(RoleEnqueue); err != nil {
				t.Errorf("RoleEnqueue: %v", err)
			}
		})
	}
}

func TestValidateRoles(t *testing.T) {
	t.Parallel()

	t.Run("sandbox role needs the sandbox profile", func(t *testing.T) {
		t.Parallel()
		c := Default(ProfileTest)
		c.Redis.Addr = "r:6379"
		if got := Fields(c.ValidateFor(RoleSandbox)); !slices.Equal(got, []string{"profile"}) {
			t.Errorf("fields = %q", got)
		}
		if err := Default(ProfileSandbox).ValidateFor(RoleSandbox); err != nil {
			t.Errorf("sandbox defaults: %v", err)
		}
	})
	t.Run("sandbox defaults need client files for the worker", func(t *testing.T) {
		t.Parallel()
		got := fieldsOf(Default(ProfileSandbox).Validate())
		if want := []string{"tls.client_cert", "tls.client_key"}; !slices.Equal(got, want) {
			t.Errorf("fields = %q, want %q", got, want)
		}
	})
	t.Run("unknown role", func(t *testing.T) {
		t.Parallel()
		if err := Default(ProfileSandbox).ValidateFor("janitor"); err == nil {
			t.Error("unknown role accepted")
		}
	})
}

func TestCheckKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o606, false},
		{0o777, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, dir, "key-"+strings.TrimPrefix(tt.mode.String(), "-"), []byte("k"), tt.mode)
			err := CheckKeyFile("tls.client_key", p)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrKeyFileMode) {
				t.Fatalf("got %v, want ErrKeyFileMode", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "tls.client_key" {
				t.Errorf("not a FieldError for tls.client_key: %v", err)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Errorf("no chmod advice: %v", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		if err := CheckKeyFile("f", filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		if err := CheckKeyFile("f", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		t.Parallel()
		if err := CheckKeyFile("f", ""); Fields(err) == nil {
			t.Errorf("got %v", err)
		}
	})
	t.Run("path needing quotes", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, t.TempDir(), "my key's.pem", []byte("k"), 0o644)
		if err := CheckKeyFile("f", p); err == nil || !strings.Contains(err.Error(), `chmod 600 '`) {
			t.Errorf("got %v", err)
		}
	})
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c, _ := withFiles(t)
	c.Redis.Password = "redis-password"
	c.OAuth.ClientSecretFile = "/run/secrets/oauth"
	r := c.Redacted()

	if r.Redis.Password != RedactedValue || r.OAuth.ClientSecret != RedactedValue || r.Tokens.EncryptionKey != RedactedValue {
		t.Errorf("secrets not redacted: %+v", r)
	}
	if c.Redis.Password != "redis-password" || c.Tokens.EncryptionKey != testKey {
		t.Error("Redacted changed the original")
	}
	if r.OAuth.ClientSecretFile != "/run/secrets/oauth" || r.TLS.ClientKey != c.TLS.ClientKey {
		t.Error("file paths should be kept")
	}
	r.Worker.Queues[QueueBulk] = 99
	if c.Worker.Queues[QueueBulk] == 99 {
		t.Error("queues shared with the original")
	}
	text := strings.Join([]string{r.Redis.Password, r.OAuth.ClientSecret, r.Tokens.EncryptionKey}, " ")
	for _, s := range []string{"redis-password", "s3cret", testKey} {
		if strings.Contains(text, s) {
			t.Errorf("redacted copy holds %q", s)
		}
	}
	if e := Default(ProfileSandbox).Redacted(); e.Redis.Password != "" {
		t.Error("an unset secret should stay empty")
	}

	// The set of secret settings is deliberate: adding one means
	// updating this list, and tagging it secret:"true".
	var secrets []string
	walkLeaves(reflect.ValueOf(Config{}), nil, func(l leaf) {
		if l.secret() {
			secrets = append(secrets, l.yamlPath())
		}
	})
	if want := []string{"redis.password", "oauth.client_secret", "tokens.encryption_key", "monitoring.password", "ingest.api_keys"}; !slices.Equal(secrets, want) {
		t.Errorf("secret settings = %q, want %q", secrets, want)
	}
}

func TestQueuesText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Queues
		ok   bool
	}{
		{"realtime:6,bulk:3,redrive:1", Queues{"realtime": 6, "bulk": 3, "redrive": 1}, true},
		{" realtime : 6 , bulk:3 ", Queues{"realtime": 6, "bulk": 3}, true},
		{"", Queues{}, true},
		{"realtime", nil, false},
		{":3", nil, false},
		{"bulk:x", nil, false},
		{"bulk:1,bulk:2", nil, false},
		{"bulk:1,", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			var q Queues
			err := q.UnmarshalText([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !reflect.DeepEqual(q, tt.want) {
				t.Errorf("got %v, want %v", q, tt.want)
			}
			if tt.ok && len(q) > 0 {
				var back Queues
				if err := back.UnmarshalText([]byte(q.String())); err != nil || !reflect.DeepEqual(back, q) {
					t.Errorf("String round trip: %q -> %v (%v)", q.String(), back, err)
				}
			}
		})
	}
}

func TestLogSlogLevel(t *testing.T) {
	t.Parallel()
	for _, lv := range []string{"debug", "info", "warn", "error", "bogus"} {
		want := map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "bogus": "INFO"}[lv]
		if got := (Log{Level: lv}).SlogLevel().String(); got != want {
			t.Errorf("%s: got %s, want %s", lv, got, want)
		}
	}
}
