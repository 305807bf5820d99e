// Package config is the one configuration of every gatewayq binary
// (worker, enqueue, sandbox, demo, bench): a YAML file with GATEWAYQ_*
// environment variables layered over it, profile defaults, and validation
// that names every bad setting at once.
//
// # Layers
//
// Lowest precedence first: built-in defaults, the profile's defaults
// (sandbox, test or production: where IR is, how strict validation is),
// the YAML file, the environment. The profile itself comes from the file's
// "profile" key or GATEWAYQ_PROFILE, the environment winning.
//
// # Environment
//
// Every setting has a variable: GATEWAYQ_ and its YAML path in upper case
// with "_" for ".", e.g. GATEWAYQ_REDIS_ADDR, GATEWAYQ_TLS_CLIENT_KEY,
// GATEWAYQ_ENDPOINTS_CLOUD_BASE_URL, GATEWAYQ_GATEWAY_CALL_TIMEOUT=90s,
// GATEWAYQ_WORKER_QUEUES=realtime:6,bulk:3,redrive:1. A list of structs
// takes JSON: GATEWAYQ_SCHEDULE_BATCHES='[{"name":"nightly","cron":"30 1 * * *","dir":"/in"}]'.
// The names are derived
// from the struct, so a new field gets its variable without more code;
// EnvName gives the variable of a path. An empty variable counts as unset.
// A GATEWAYQ_* variable that names no setting is an error (a typo must not
// pass silently), except GATEWAYQ_CONFIG (the binaries' config file path)
// and the few other names in env.go (test switches, the sandbox's admin
// token).
//
// # Secrets
//
// oauth.client_secret, tokens.encryption_key, monitoring.password,
// ingest.api_keys and redis.password come from the environment or, for all
// but the last, from a *_file setting naming a file readable by its owner
// only. Private key and secret files that group
// or others can read are refused (CheckKeyFile). Redacted gives a copy
// safe to log; no error of this package contains a secret.
//
// # Validation
//
// Load reports what it cannot parse; ValidateFor reports what is wrong with
// the values, for a Role: the worker needs its TLS and key files, the
// enqueue CLI does not. Both return every problem at once, joined, each a
// *FieldError naming its YAML path, e.g.
//
//	tls.client_key: /etc/gatewayq/tls/client.key has mode 0644, readable by group or others; run: chmod 600 /etc/gatewayq/tls/client.key
//	worker.shutdown_timeout: must be longer than gateway.call_timeout (1m0s) ...
//
// Relative file paths are relative to the working directory.
package config
