package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Ingest is the HTTP ingest API for event triggers (POST /v1/jobs, GET
// /v1/jobs/{id}) that a worker serves on its own TLS listener when enabled.
// Every caller is authenticated, by an API key or by a client certificate
// issued by ClientCA; a listener with neither is refused.
type Ingest struct {
	// Enabled starts the ingest listener in the worker. Zero value false:
	// not served. Default false.
	Enabled bool `yaml:"enabled"`
	// Addr is the host:port of the listener. Required when enabled.
	// Default ":8443".
	Addr string `yaml:"addr"`
	// Cert and Key are PEM files of the listener's server certificate
	// (with any intermediates after it) and its private key. Required
	// when enabled; Key must be readable by its owner only (chmod 600).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM file of the CAs whose client certificates
	// authenticate a producer (mutual TLS). Zero value "": client
	// certificates are not asked for, and API keys are the only way in.
	// With API keys too, a certificate is optional; without them, required.
	ClientCA string `yaml:"client_ca"`
	// APIKeys are the producers' keys as "name:key" entries separated by
	// commas or new lines; the name (1-64 characters of A-Z a-z 0-9 . _ -)
	// is what logs show of a caller, the key (at least 16 characters, 32
	// or more recommended, no white space or commas) is sent as
	// "Authorization: Bearer <key>" or "X-API-Key: <key>". Set it from
	// GATEWAYQ_INGEST_API_KEYS or APIKeysFile, not in a file that is
	// checked in. Setting both it and APIKeysFile is an error. Default "".
	APIKeys string `yaml:"api_keys" secret:"true"`
	// APIKeysFile is a file holding APIKeys, one "name:key" a line (blank
	// lines and lines starting with # are skipped); owner-only permissions
	// (chmod 600). Load reads it into APIKeys; the worker reads it at
	// start and again on SIGHUP (as it does Cert, Key and ClientCA).
	// Default "".
	APIKeysFile string `yaml:"api_keys_file"`
	// MaxBodyBytes caps a request's body; a larger one is refused with
	// 413 before it is read. In [1024, 67108864]. Default 1048576 (1 MiB):
	// raise it for large payday returns, or enqueue those in bulk.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxJobs caps the jobs of one request (a JSON list); more are refused
	// with 413. In [1, 10000]. Default 100.
	MaxJobs int `yaml:"max_jobs"`

	keysFrom string // APIKeysFile, once LoadSecrets has read it
}

// Limits of the ingest settings.
const (
	MinAPIKeyLength     = 16
	MinIngestBodyBytes  = 1 << 10
	MaxIngestBodyBytes  = 64 << 20
	MaxIngestJobs       = 10000
	DefaultIngestAddr   = ":8443"
	DefaultIngestBody   = 1 << 20
	DefaultIngestJobs   = 100
	maxAPIKeyNameLength = 64
)

// APIKey is one producer's key for the ingest API.
type APIKey struct {
	// Name identifies the producer in logs; it is not secret.
	Name string
	// Key is the secret the producer sends. Never log it.
	Key string
}

var apiKeyNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseAPIKeys parses "name:key" entries separated by commas or new lines,
// skipping blank entries and lines that start with #. Every bad entry is
// reported, by position and name; no error contains a key.
func ParseAPIKeys(s string) ([]APIKey, error) {
	var keys []APIKey
	var problems []string
	names := map[string]int{}
	secrets := map[string]string{}
	n := 0
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			name, key, ok := strings.Cut(entry, ":")
			name = strings.TrimSpace(name)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("entry %d: want name:key", n))
				continue
			case !apiKeyNamePattern.MatchString(name):
				// The name may be a key pasted in the wrong place: don't
				// repeat it.
				problems = append(problems, fmt.Sprintf("entry %d: the name must be 1-%d characters of A-Z a-z 0-9 . _ -", n, maxAPIKeyNameLength))
				continue
			}
			if first, dup := names[name]; dup {
				problems = append(problems, fmt.Sprintf("entry %d (%s): name given twice (first in entry %d)", n, name, first))
				continue
			}
			names[name] = n
			switch {
			case len(key) < MinAPIKeyLength:
				problems = append(problems, fmt.Sprintf("entry %d (%s): key too short: at least %d characters (make one with: openssl rand -base64 32)", n, name, MinAPIKeyLength))
				continue
			case strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
				problems = append(problems, fmt.Sprintf("entry %d (%s): key must not contain white space or control characters", n, name))
				continue
			}
			if other, dup := secrets[key]; dup {
				// One key for two names would make the logs lie about
				// who called.
				problems = append(problems, fmt.Sprintf("entry %d (%s): same key as %s; give each producer its own", n, name, other))
				continue
			}
			secrets[key] = name
			keys = append(keys, APIKey{Name: name, Key: key})
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return keys, nil
}

// Keys returns the API keys of APIKeys (which Load fills from
// APIKeysFile).
func (i Ingest) Keys() ([]APIKey, error) { return ParseAPIKeys(i.APIKeys) }

// check applies the field rules of the ingest section.
func (i Ingest) check(es *errs) {
	if i.APIKeys != "" {
		if _, err := i.Keys(); err != nil {
			field := "ingest.api_keys"
			if i.APIKeysFile != "" {
				field = "ingest.api_keys_file"
			}
			es.add(field, err)
		}
	}
	if i.MaxBodyBytes < MinIngestBodyBytes || i.MaxBodyBytes > MaxIngestBodyBytes {
		es.add("ingest.max_body_bytes", fmt.Errorf("must be in [%d, %d], got %d", MinIngestBodyBytes, MaxIngestBodyBytes, i.MaxBodyBytes))
	}
	if i.MaxJobs < 1 || i.MaxJobs > MaxIngestJobs {
		es.add("ingest.max_jobs", fmt.Errorf("must be in [1, %d], got %d", MaxIngestJobs, i.MaxJobs))
	}
	if !i.Enabled {
		return
	}
	if i.Addr == "" {
		es.add("ingest.addr", errors.New("required when ingest.enabled (host:port, e.g. :8443)"))
	} else if err := checkHostPort(i.Addr, false); err != nil {
		es.add("ingest.addr", err)
	}
	if i.Cert == "" {
		es.add("ingest.cert", errors.New("required when ingest.enabled: the listener serves TLS only"))
	}
	if i.Key == "" {
		es.add("ingest.key", errors.New("required when ingest.enabled: the listener serves TLS only"))
	}
	if i.APIKeys == "" && i.APIKeysFile == "" && i.ClientCA == "" {
		// An ingest API anyone on the network could fill is not offered,
		// not even in the sandbox.
		es.add("ingest.api_keys", fmt.Errorf("required when ingest.enabled, unless ingest.client_ca is set: set %s or ingest.api_keys_file, or ingest.client_ca for mutual TLS", EnvName("ingest.api_keys")))
	}
}

// checkFiles checks the ingest files a worker needs when the listener is
// enabled.
func (i Ingest) checkFiles(es *errs) {
	checkSecretFile(es, "ingest.api_keys_file", i.APIKeysFile, i.keysFrom)
	if !i.Enabled {
		return
	}
	if i.Cert != "" && i.Key != "" {
		checkKeyPair(es, "ingest.cert", i.Cert, "ingest.key", i.Key)
	}
	if i.ClientCA != "" {
		if b, ok := readFile(es, "ingest.client_ca", i.ClientCA); ok {
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				es.add("ingest.client_ca", fmt.Errorf("%s holds no PEM certificate", i.ClientCA))
			}
		}
	}
}
