package config

import (
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		yaml  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "built-in default",
			check: func(t *testing.T, c *Config) {
				if c.Profile != ProfileSandbox || c.Redis.KeyPrefix != "gatewayq:" || c.Worker.Concurrency != 20 {
					t.Errorf("got profile %q prefix %q concurrency %d", c.Profile, c.Redis.KeyPrefix, c.Worker.Concurrency)
				}
				if c.Endpoints.Cloud.BaseURL != "https://127.0.0.1:4046" || c.Endpoints.Desktop.BaseURL != "https://127.0.0.1:4443" {
					t.Errorf("sandbox endpoints: %+v", c.Endpoints)
				}
				if c.Worker.ShutdownTimeout != 90*time.Second {
					t.Errorf("shutdown_timeout = %s, want call_timeout+30s", c.Worker.ShutdownTimeout)
				}
			},
		},
		{
			name: "profile from the file sets the hosts",
			yaml: "profile: production\n",
			check: func(t *testing.T, c *Config) {
				if c.Endpoints.Cloud.BaseURL != "https://services.ird.govt.nz:4046" || c.Log.Format != "json" {
					t.Errorf("got cloud %q format %q", c.Endpoints.Cloud.BaseURL, c.Log.Format)
				}
			},
		},
		{
			name: "GATEWAYQ_PROFILE beats the file's profile",
			yaml: "profile: production\n",
			env:  env("GATEWAYQ_PROFILE=test"),
			check: func(t *testing.T, c *Config) {
				if c.Profile != ProfileTest || c.Endpoints.Cloud.BaseURL != "https://test5.services.ird.govt.nz:4046" {
					t.Errorf("got %q %q", c.Profile, c.Endpoints.Cloud.BaseURL)
				}
			},
		},
		{
			name: "file beats profile",
			yaml: "profile: production\nendpoints:\n  cloud:\n    base_url: https://file.example:4046\n",
			check: func(t *testing.T, c *Config) {
				if got := c.Endpoints.Cloud.BaseURL; got != "https://file.example:4046" {
					t.Errorf("cloud base_url = %q", got)
				}
				if got := c.Endpoints.Desktop.BaseURL; got != "https://services.ird.govt.nz" {
					t.Errorf("desktop base_url = %q, want the profile's", got)
				}
			},
		},
		{
			name: "env beats file",
			yaml: "endpoints:\n  cloud:\n    base_url: https://file.example:4046\nworker:\n  concurrency: 5\n",
			env:  env("GATEWAYQ_ENDPOINTS_CLOUD_BASE_URL=https://env.example:4046", "GATEWAYQ_WORKER_CONCURRENCY=7"),
			check: func(t *testing.T, c *Config) {
				if c.Endpoints.Cloud.BaseURL != "https://env.example:4046" || c.Worker.Concurrency != 7 {
					t.Errorf("got %q %d", c.Endpoints.Cloud.BaseURL, c.Worker.Concurrency)
				}
			},
		},
		{
			name: "shutdown_timeout follows the final call_timeout",
			yaml: "gateway:\n  call_timeout: 2m\n",
			check: func(t *testing.T, c *Config) {
				if c.Worker.ShutdownTimeout != 150*time.Second {
					t.Errorf("shutdown_timeout = %s", c.Worker.ShutdownTimeout)
				}
			},
		},
		{
			name: "explicit shutdown_timeout is kept",
			yaml: "worker:\n  shutdown_timeout: 5m\n",
			env:  env("GATEWAYQ_GATEWAY_CALL_TIMEOUT=90s"),
			check: func(t *testing.T, c *Config) {
				if c.Worker.ShutdownTimeout != 5*time.Minute || c.Gateway.CallTimeout != 90*time.Second {
					t.Errorf("got %s %s", c.Worker.ShutdownTimeout, c.Gateway.CallTimeout)
				}
			},
		},
		{
			name: "queues from the file replace the defaults",
			yaml: "worker:\n  queues:\n    realtime: 2\n",
			check: func(t *testing.T, c *Config) {
				if want := (Queues{QueueRealtime: 2}); !reflect.DeepEqual(c.Worker.Queues, want) {
					t.Errorf("queues = %v, want %v", c.Worker.Queues, want)
				}
			},
		},
		{
			name: "queues from the environment replace the file's",
			yaml: "worker:\n  queues:\n    realtime: 2\n",
			env:  env("GATEWAYQ_WORKER_QUEUES=bulk:4, redrive:1"),
			check: func(t *testing.T, c *Config) {
				if want := (Queues{QueueBulk: 4, QueueRedrive: 1}); !reflect.DeepEqual(c.Worker.Queues, want) {
					t.Errorf("queues = %v, want %v", c.Worker.Queues, want)
				}
			},
		},
		{
			name: "null in the file and empty env keep the lower layer",
			yaml: "redis:\n  key_prefix:\nworker:\n",
			env:  env("GATEWAYQ_REDIS_KEY_PREFIX=", "GATEWAYQ_WORKER_CONCURRENCY="),
			check: func(t *testing.T, c *Config) {
				if c.Redis.KeyPrefix != "gatewayq:" || c.Worker.Concurrency != 20 {
					t.Errorf("got %q %d", c.Redis.KeyPrefix, c.Worker.Concurrency)
				}
			},
		},
		{
			name: "last duplicate variable wins",
			env:  env("GATEWAYQ_WORKER_MAX_RETRY=3", "GATEWAYQ_WORKER_MAX_RETRY=4"),
			check: func(t *testing.T, c *Config) {
				if c.Worker.MaxRetry != 4 {
					t.Errorf("max_retry = %d", c.Worker.MaxRetry)
				}
			},
		},
		{
			name: "anchors and aliases",
			yaml: "limits:\n  cloud_rps: &r 7.5\n  desktop_rps: *r\n",
			check: func(t *testing.T, c *Config) {
				if c.Limits.CloudRPS != 7.5 || c.Limits.DesktopRPS != 7.5 {
					t.Errorf("got %v %v", c.Limits.CloudRPS, c.Limits.DesktopRPS)
				}
			},
		},
		{
			name: "allow-listed and foreign variables are ignored",
			env:  env("GATEWAYQ_NO_XMLLINT=1", "GATEWAYQ_CONFIG=/etc/gatewayq.yaml", "PATH=/bin", "REDIS_ADDR=x", "NOEQUALS"),
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, Default(ProfileSandbox)) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
		{
			name: "file of comments only",
			yaml: "# nothing here\n",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, Default(ProfileSandbox)) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, t.TempDir(), "gatewayq.yaml", []byte(tt.yaml), 0o644)
			}
			c, err := Load(path, tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		yaml   string
		env    []string
		fields []string // sorted
		is     error
		text   []string // substrings of the error
	}{
		{
			name:   "unknown keys, all reported, with suggestions",
			yaml:   "redis:\n  adr: x\nwrker:\n  concurrency: 1\ntls:\n  client_key: k\n  clientcert: c\n",
			fields: []string{"redis.adr", "tls.clientcert", "wrker"},
			is:     ErrUnknownKey,
			text:   []string{"redis.adr: line 2: unknown key (did you mean addr?)", "wrker: line 3: unknown key (did you mean worker?)", "did you mean client_cert?"},
		},
		{
			name:   "wrong types name their paths",
			yaml:   "worker:\n  concurrency: many\ngateway:\n  call_timeout: 60\nlimits:\n  cloud_rps: fast\n",
			fields: []string{"gateway.call_timeout", "limits.cloud_rps", "worker.concurrency"},
		},
		{
			name:   "a section that is not a mapping",
			yaml:   "redis: localhost:6379\n",
			fields: []string{"redis"},
			text:   []string{"want a mapping"},
		},
		{
			name:   "duplicate key",
			yaml:   "log:\n  level: info\n  level: debug\n",
			fields: []string{"log.level"},
			text:   []string{"given twice"},
		},
		{
			name:   "unknown variable with suggestion",
			env:    env("GATEWAYQ_REDIS_ADR=x", "GATEWAYQ_TOTALLY_UNRELATED_THING=1"),
			fields: []string{"GATEWAYQ_REDIS_ADR", "GATEWAYQ_TOTALLY_UNRELATED_THING"},
			is:     ErrUnknownEnv,
			text:   []string{"GATEWAYQ_REDIS_ADR: unknown variable (did you mean GATEWAYQ_REDIS_ADDR?)"},
		},
		{
			name: "unparsable variables",
			env: env("GATEWAYQ_WORKER_CONCURRENCY=x", "GATEWAYQ_GATEWAY_CALL_TIMEOUT=60", "GATEWAYQ_TLS_INSECURE_SKIP_VERIFY=maybe",
				"GATEWAYQ_LIMITS_CLOUD_RPS=NaN", "GATEWAYQ_WORKER_QUEUES=realtime", "GATEWAYQ_REDIS_DB=99999999999999999999"),
			fields: []string{"GATEWAYQ_GATEWAY_CALL_TIMEOUT", "GATEWAYQ_LIMITS_CLOUD_RPS", "GATEWAYQ_REDIS_DB",
				"GATEWAYQ_TLS_INSECURE_SKIP_VERIFY", "GATEWAYQ_WORKER_CONCURRENCY", "GATEWAYQ_WORKER_QUEUES"},
			text: []string{`GATEWAYQ_WORKER_CONCURRENCY: not an integer: "x"`, `GATEWAYQ_GATEWAY_CALL_TIMEOUT: not a duration`, "out of range"},
		},
		{
			name:   "file and env errors together",
			yaml:   "log:\n  levle: info\n",
			env:    env("GATEWAYQ_LOG_LEVLE=info"),
			fields: []string{"GATEWAYQ_LOG_LEVLE", "log.levle"},
		},
		{
			name:   "unknown profile in the file",
			yaml:   "profile: prod\n",
			fields: []string{"profile"},
			text:   []string{`unknown profile "prod"`},
		},
		{
			name:   "unknown profile in the environment",
			env:    env("GATEWAYQ_PROFILE=staging"),
			fields: []string{"GATEWAYQ_PROFILE"},
		},
		{
			name: "two documents",
			yaml: "log:\n  level: info\n---\nlog:\n  level: debug\n",
			text: []string{"more than one YAML document"},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			text: []string{"must be a mapping"},
		},
		{
			name: "not YAML",
			yaml: "redis: [\n",
			text: []string{"not valid YAML"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, t.TempDir(), "gatewayq.yaml", []byte(tt.yaml), 0o644)
			}
			c, err := Load(path, tt.env)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if tt.fields != nil {
				if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
					t.Errorf("fields = %q, want %q\n%v", got, tt.fields, err)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v: %v", tt.is, err)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func TestLoadSecretFiles(t *testing.T) {
	t.Parallel()
	const secret = "the-client-secret"

	setup := func(t *testing.T, secretMode, keyMode os.FileMode) (yamlPath, secretPath, keyPath string) {
		dir := t.TempDir()
		secretPath = writeFile(t, dir, "secret", []byte("  "+secret+"\n"), secretMode)
		keyPath = writeFile(t, dir, "tokens.key", []byte(testKey+"\n"), keyMode)
		yamlPath = writeFile(t, dir, "gatewayq.yaml", []byte(
			"oauth:\n  client_secret_file: "+secretPath+"\ntokens:\n  encryption_key_file: "+keyPath+"\n"), 0o644)
		return yamlPath, secretPath, keyPath
	}

	t.Run("owner-only files are read and trimmed", func(t *testing.T) {
		t.Parallel()
		path, _, _ := setup(t, 0o600, 0o400)
		c, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.OAuth.ClientSecret != secret || c.Tokens.EncryptionKey != testKey {
			t.Errorf("secrets not loaded")
		}
		if err := c.LoadSecrets(); err != nil {
			t.Errorf("second LoadSecrets: %v", err)
		}
	})

	t.Run("group- or world-readable files are refused", func(t *testing.T) {
		t.Parallel()
		path, secretPath, keyPath := setup(t, 0o644, 0o640)
		_, err := Load(path, nil)
		if !errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("got %v, want ErrKeyFileMode", err)
		}
		if got, want := fieldsOf(err), []string{"oauth.client_secret_file", "tokens.encryption_key_file"}; !slices.Equal(got, want) {
			t.Errorf("fields = %q, want %q", got, want)
		}
		for _, s := range []string{secretPath, "0644", keyPath, "0640", "chmod 600"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error lacks %q: %v", s, err)
			}
		}
		assertNoSecret(t, err, secret, testKey)
	})

	t.Run("secret given both directly and by file", func(t *testing.T) {
		t.Parallel()
		path, _, _ := setup(t, 0o600, 0o600)
		_, err := Load(path, env("GATEWAYQ_OAUTH_CLIENT_SECRET=other", "GATEWAYQ_TOKENS_ENCRYPTION_KEY="+testKey))
		if got, want := fieldsOf(err), []string{"oauth.client_secret", "tokens.encryption_key"}; !slices.Equal(got, want) {
			t.Errorf("fields = %q, want %q (%v)", got, want, err)
		}
		assertNoSecret(t, err, secret, testKey, "other")
	})

	t.Run("empty secret file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := writeFile(t, dir, "secret", []byte("\n"), 0o600)
		_, err := Load("", env("GATEWAYQ_OAUTH_CLIENT_SECRET_FILE="+p))
		if got := fieldsOf(err); !slices.Equal(got, []string{"oauth.client_secret_file"}) {
			t.Errorf("fields = %q (%v)", got, err)
		}
	})
}

// TestEnvCoversEverySetting sets every setting through its variable, so
// that a field of a type the environment cannot parse fails here rather
// than in production, and checks that no two settings share a variable.
func TestEnvCoversEverySetting(t *testing.T) {
	t.Parallel()
	var environ []string
	names := map[string]string{}
	def := defaults(ProfileTest)
	walkLeaves(reflect.ValueOf(def).Elem(), nil, func(l leaf) {
		if other, dup := names[l.envName()]; dup {
			t.Errorf("%s and %s share %s", other, l.yamlPath(), l.envName())
		}
		names[l.envName()] = l.yamlPath()
		if l.envName() == "GATEWAYQ_PROFILE" {
			return
		}
		var v string
		switch {
		case l.value.Type() == durationType:
			v = "7s"
		case l.value.Type() == reflect.TypeFor[Queues]():
			v = "bulk:7"
		case l.value.Type() == reflect.TypeFor[ScheduledBatches]():
			v = `[{"name":"seven","cron":"@daily","dir":"/seven"}]`
		case l.value.Kind() == reflect.String:
			v = "seven"
		case l.value.Kind() == reflect.Bool:
			v = strconv.FormatBool(!l.value.Bool())
		case l.value.Kind() == reflect.Int:
			v = "7"
		case l.value.Kind() == reflect.Float64:
			v = "7.5"
		default:
			t.Errorf("%s: no sample value for %s", l.yamlPath(), l.value.Type())
		}
		environ = append(environ, l.envName()+"="+v)
	})
	environ = append(environ, "GATEWAYQ_PROFILE=test")

	c := defaults(ProfileTest)
	if err := applyEnv(c, environ); err != nil {
		t.Fatal(err)
	}
	walkLeaves(reflect.ValueOf(c).Elem(), nil, func(l leaf) {
		var d reflect.Value
		walkLeaves(reflect.ValueOf(def).Elem(), nil, func(dl leaf) {
			if dl.yamlPath() == l.yamlPath() {
				d = dl.value
			}
		})
		if l.yamlPath() != "profile" && reflect.DeepEqual(l.value.Interface(), d.Interface()) {
			t.Errorf("%s was not set by %s", l.yamlPath(), l.envName())
		}
	})
	if EnvName("tls.client_key") != "GATEWAYQ_TLS_CLIENT_KEY" || EnvName("endpoints.cloud.base_url") != "GATEWAYQ_ENDPOINTS_CLOUD_BASE_URL" || EnvName("nope") != "" {
		t.Errorf("EnvName mapping is off")
	}
}

// TestExampleYAML loads example.yaml with its /etc/gatewayq files made
// real, validates it for the worker, and checks that it shows every
// setting, so the example cannot rot.
func TestExampleYAML(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("shows every setting", func(t *testing.T) {
		t.Parallel()
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			t.Fatal(err)
		}
		present := map[string]bool{}
		var walk func(n *yaml.Node, path string)
		walk = func(n *yaml.Node, path string) {
			if n.Kind == yaml.DocumentNode {
				walk(n.Content[0], path)
				return
			}
			if n.Kind != yaml.MappingNode {
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := strings.TrimPrefix(path+"."+n.Content[i].Value, ".")
				present[p] = true
				walk(n.Content[i+1], p)
			}
		}
		walk(&root, "")
		walkLeaves(reflect.ValueOf(Config{}), nil, func(l leaf) {
			if !present[l.yamlPath()] {
				t.Errorf("example.yaml lacks %s", l.yamlPath())
			}
		})
	})

	t.Run("loads and validates", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		tlsPair := ecPair(elliptic.P256())
		m2m := rsaPair()
		writeFile(t, dir, "tls/client.crt", tlsPair.cert, 0o644)
		writeFile(t, dir, "tls/client.key", tlsPair.key, 0o600)
		writeFile(t, dir, "tls/ca.pem", tlsPair.cert, 0o644)
		writeFile(t, dir, "m2m/signing.crt", m2m.cert, 0o644)
		writeFile(t, dir, "m2m/signing.key", m2m.key, 0o600)
		writeFile(t, dir, "secrets/oauth-client-secret", []byte("client-secret\n"), 0o600)
		writeFile(t, dir, "secrets/tokens-key", []byte(testKey), 0o600)
		text := strings.ReplaceAll(string(data), "/etc/gatewayq/", dir+"/")
		path := writeFile(t, dir, "gatewayq.yaml", []byte(text), 0o644)

		c, err := Load(path, env("GATEWAYQ_REDIS_PASSWORD=redis-password"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("example.yaml does not validate for the worker:\n%v", err)
		}
		if c.Profile != ProfileProduction || c.OAuth.ClientSecret != "client-secret" || c.Worker.Queues[QueueBulk] != 3 {
			t.Errorf("unexpected values: %+v", c)
		}
	})
}
