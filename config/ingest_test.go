package config

import (
	"crypto/elliptic"
	"os"
	"slices"
	"strings"
	"testing"
)

const (
	ingestKeyA = "payroll-0123456789abcdef0123456789"
	ingestKeyB = "hr-system-fedcba9876543210fedcba98"
)

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		names []string // nil: an error
		want  string   // in the error
	}{
		{"comma separated", "payroll:" + ingestKeyA + ", hr:" + ingestKeyB, []string{"payroll", "hr"}, ""},
		{"a file: lines, comments, blank lines", "# producers\npayroll:" + ingestKeyA + "\n\n  # hr below\nhr:" + ingestKeyB + "\n", []string{"payroll", "hr"}, ""},
		{"key holding a colon", "payroll:abc:def:0123456789abcdef", []string{"payroll"}, ""},
		{"empty", "", []string{}, ""},
		{"no name", ingestKeyA, nil, "entry 1: want name:key"},
		{"bad name", "pay roll:" + ingestKeyA, nil, "entry 1: the name must be"},
		{"short key", "payroll:0123456789", nil, "entry 1 (payroll): key too short"},
		{"key with a space", "payroll:0123456789 abcdef0123", nil, "white space"},
		{"name twice", "payroll:" + ingestKeyA + ",payroll:" + ingestKeyB, nil, "entry 2 (payroll): name given twice (first in entry 1)"},
		{"one key, two names", "payroll:" + ingestKeyA + ",hr:" + ingestKeyA, nil, "entry 2 (hr): same key as payroll"},
		{"every problem", "x,y:short," + ingestKeyA, nil, "entry 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, err := ParseAPIKeys(tt.in)
			if tt.names == nil {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want one containing %q", err, tt.want)
				}
				assertNoSecret(t, err, ingestKeyA, ingestKeyB, "0123456789abcdef")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, k := range keys {
				names = append(names, k.Name)
				if len(k.Key) < MinAPIKeyLength {
					t.Errorf("%s: key %q", k.Name, k.Key)
				}
			}
			if !slices.Equal(names, tt.names) && len(names)+len(tt.names) > 0 {
				t.Errorf("names = %q, want %q", names, tt.names)
			}
		})
	}
}

func TestValidateIngest(t *testing.T) {
	t.Parallel()
	enabled := func(c *Config) {
		c.Ingest.Enabled = true
		c.Ingest.Cert, c.Ingest.Key = "server.crt", "server.key"
		c.Ingest.APIKeys = "payroll:" + ingestKeyA
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		fields []string
	}{
		{"off by default", func(c *Config) {}, nil},
		{"on, with keys", enabled, nil},
		{"on, mutual TLS only", func(c *Config) { enabled(c); c.Ingest.APIKeys = ""; c.Ingest.ClientCA = "ca.pem" }, nil},
		{"on, keys from a file", func(c *Config) { enabled(c); c.Ingest.APIKeys = ""; c.Ingest.APIKeysFile = "keys" }, nil},
		{"on, no way to authenticate", func(c *Config) { enabled(c); c.Ingest.APIKeys = "" }, []string{"ingest.api_keys"}},
		{"on, no certificate", func(c *Config) { enabled(c); c.Ingest.Cert, c.Ingest.Key = "", "" }, []string{"ingest.cert", "ingest.key"}},
		{"on, bad addr", func(c *Config) { enabled(c); c.Ingest.Addr = "8443" }, []string{"ingest.addr"}},
		{"on, no addr", func(c *Config) { enabled(c); c.Ingest.Addr = "" }, []string{"ingest.addr"}},
		{"bad keys, even off", func(c *Config) { c.Ingest.APIKeys = "payroll:tiny-key" }, []string{"ingest.api_keys"}},
		{"limits", func(c *Config) { c.Ingest.MaxBodyBytes = 100; c.Ingest.MaxJobs = 0 }, []string{"ingest.max_body_bytes", "ingest.max_jobs"}},
		{"limits too high", func(c *Config) { c.Ingest.MaxBodyBytes = MaxIngestBodyBytes + 1; c.Ingest.MaxJobs = MaxIngestJobs + 1 }, []string{"ingest.max_body_bytes", "ingest.max_jobs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default(ProfileProduction)
			c.Redis.Addr = "redis.internal:6379"
			tt.mutate(c)
			err := c.ValidateFor(RoleEnqueue)
			if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q\n%v", got, tt.fields, err)
			}
			assertNoSecret(t, err, ingestKeyA, "tiny-key")
		})
	}
	if d := Default(ProfileSandbox).Ingest; d.Enabled || d.Addr != ":8443" || d.MaxBodyBytes != 1<<20 || d.MaxJobs != 100 {
		t.Errorf("defaults = %+v", d)
	}
}

func TestValidateIngestFiles(t *testing.T) {
	t.Parallel()
	// withIngest is a worker config with the ingest listener on and its
	// files in place.
	withIngest := func(t *testing.T) (*Config, string) {
		c, dir := withFiles(t)
		pair := ecPair(elliptic.P256())
		c.Ingest.Enabled = true
		c.Ingest.Cert = writeFile(t, dir, "ingest/server.crt", pair.cert, 0o644)
		c.Ingest.Key = writeFile(t, dir, "ingest/server.key", pair.key, 0o600)
		c.Ingest.ClientCA = writeFile(t, dir, "ingest/ca.pem", pair.cert, 0o644)
		return c, dir
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		c, _ := withIngest(t)
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("files wrong", func(t *testing.T) {
		t.Parallel()
		c, dir := withIngest(t)
		if err := os.Chmod(c.Ingest.Key, 0o644); err != nil {
			t.Fatal(err)
		}
		c.Ingest.ClientCA = writeFile(t, dir, "ingest/not-ca.pem", []byte("nope"), 0o644)
		c.Ingest.Cert = writeFile(t, dir, "ingest/other.crt", ecPair(elliptic.P256()).cert, 0o644)
		if got := fieldsOf(c.Validate()); !slices.Equal(got, []string{"ingest.client_ca", "ingest.key"}) {
			t.Errorf("fields = %q", got)
		}
		if err := os.Chmod(c.Ingest.Key, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := fieldsOf(c.Validate()); !slices.Equal(got, []string{"ingest.client_ca", "ingest.key"}) {
			t.Errorf("key that does not fit the certificate: fields = %q", got)
		}
	})
	t.Run("files of a listener that is off are not needed", func(t *testing.T) {
		t.Parallel()
		c, _ := withFiles(t)
		c.Ingest.Cert, c.Ingest.Key, c.Ingest.ClientCA = "/nowhere/server.crt", "/nowhere/server.key", "/nowhere/ca.pem"
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	})
	t.Run("keys file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := writeFile(t, dir, "keys", []byte("# producers\npayroll:"+ingestKeyA+"\nhr:"+ingestKeyB+"\n"), 0o600)
		c, err := Load("", env("GATEWAYQ_INGEST_API_KEYS_FILE="+p, "GATEWAYQ_INGEST_ENABLED=true",
			"GATEWAYQ_INGEST_CERT=c", "GATEWAYQ_INGEST_KEY=k"))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := c.Ingest.Keys()
		if err != nil || len(keys) != 2 || keys[1].Name != "hr" || keys[1].Key != ingestKeyB {
			t.Errorf("keys = %v, %v", len(keys), err)
		}
		if err := c.ValidateFor(RoleEnqueue); err != nil {
			t.Error(err)
		}
		if r := c.Redacted(); r.Ingest.APIKeys != RedactedValue || c.Ingest.APIKeys == RedactedValue {
			t.Error("api_keys not redacted in the copy, or redacted in the original")
		}

		open := writeFile(t, dir, "open-keys", []byte("payroll:"+ingestKeyA), 0o644)
		_, err = Load("", env("GATEWAYQ_INGEST_API_KEYS_FILE="+open))
		if got := fieldsOf(err); !slices.Equal(got, []string{"ingest.api_keys_file"}) {
			t.Errorf("open file: fields = %q (%v)", got, err)
		}
		_, err = Load("", env("GATEWAYQ_INGEST_API_KEYS_FILE="+p, "GATEWAYQ_INGEST_API_KEYS=hr:"+ingestKeyB))
		if got := fieldsOf(err); !slices.Equal(got, []string{"ingest.api_keys"}) {
			t.Errorf("both: fields = %q (%v)", got, err)
		}
		assertNoSecret(t, err, ingestKeyA, ingestKeyB)

		bad := writeFile(t, dir, "bad-keys", []byte("payroll:short\n"), 0o600)
		c, err = Load("", env("GATEWAYQ_INGEST_API_KEYS_FILE="+bad))
		if err != nil {
			t.Fatal(err)
		}
		err = c.ValidateFor(RoleEnqueue)
		if got := fieldsOf(err); !slices.Equal(got, []string{"ingest.api_keys_file"}) {
			t.Errorf("bad file: fields = %q (%v)", got, err)
		}
	})
}

// The example file, with the ingest listener switched on and its files
// made real, validates for the worker.
func TestExampleYAMLIngestOn(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "\ningest:\n")
	if i < 0 {
		t.Fatal("example.yaml has no ingest section")
	}
	on := strings.Replace(text[i:], "  enabled: false", "  enabled: true", 1)
	on = strings.Replace(on, `  api_keys_file: ""`, "  api_keys_file: /etc/gatewayq/secrets/ingest-api-keys", 1)
	text = text[:i] + on

	dir := t.TempDir()
	tlsPair := ecPair(elliptic.P256())
	m2m := rsaPair()
	ingestPair := ecPair(elliptic.P256())
	writeFile(t, dir, "tls/client.crt", tlsPair.cert, 0o644)
	writeFile(t, dir, "tls/client.key", tlsPair.key, 0o600)
	writeFile(t, dir, "tls/ca.pem", tlsPair.cert, 0o644)
	writeFile(t, dir, "m2m/signing.crt", m2m.cert, 0o644)
	writeFile(t, dir, "m2m/signing.key", m2m.key, 0o600)
	writeFile(t, dir, "secrets/oauth-client-secret", []byte("client-secret\n"), 0o600)
	writeFile(t, dir, "secrets/tokens-key", []byte(testKey), 0o600)
	writeFile(t, dir, "secrets/ingest-api-keys", []byte("payroll:"+ingestKeyA+"\n"), 0o600)
	writeFile(t, dir, "ingest/server.crt", ingestPair.cert, 0o644)
	writeFile(t, dir, "ingest/server.key", ingestPair.key, 0o600)
	writeFile(t, dir, "ingest/clients-ca.pem", tlsPair.cert, 0o644)
	path := writeFile(t, dir, "gatewayq.yaml", []byte(strings.ReplaceAll(text, "/etc/gatewayq/", dir+"/")), 0o644)

	c, err := Load(path, env("GATEWAYQ_REDIS_PASSWORD=redis-password"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example.yaml with ingest on does not validate for the worker:\n%v", err)
	}
	if keys, err := c.Ingest.Keys(); err != nil || len(keys) != 1 || !c.Ingest.Enabled {
		t.Errorf("ingest = enabled %v, %d keys, %v", c.Ingest.Enabled, len(keys), err)
	}
}

// FuzzParseAPIKeys: never a panic; what is accepted is well formed.
func FuzzParseAPIKeys(f *testing.F) {
	for _, s := range []string{"payroll:" + ingestKeyA, "a:b,c:d", "# x\n\n", ":", "a:" + ingestKeyA + ",a:" + ingestKeyB} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ParseAPIKeys(s)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, k := range keys {
			if !apiKeyNamePattern.MatchString(k.Name) || len(k.Key) < MinAPIKeyLength || names[k.Name] {
				t.Fatalf("accepted %q:%q from %q", k.Name, k.Key, s)
			}
			names[k.Name] = true
		}
	})
}
