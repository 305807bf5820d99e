package config

import "reflect"

// RedactedValue is the text that replaces a secret in Redacted's copy.
const RedactedValue = "[redacted]"

// Redacted returns a deep copy of c with every secret that is set
// (redis.password, oauth.client_secret, tokens.encryption_key) replaced by
// "[redacted]", for logging the effective configuration. A secret that is
// not set stays empty, so the log still shows whether it was given. File
// paths are not secret and are kept.
func (c *Config) Redacted() *Config {
	r := *c
	r.Worker.Queues = c.Worker.Queues.clone()
	r.Schedule.Batches = c.Schedule.Batches.clone()
	// Secrets are marked with the struct tag secret:"true", so a secret
	// added later is redacted without touching this function.
	walkLeaves(reflect.ValueOf(&r).Elem(), nil, func(l leaf) {
		if l.secret() && l.value.Kind() == reflect.String && l.value.String() != "" {
			l.value.SetString(RedactedValue)
		}
	})
	return &r
}
