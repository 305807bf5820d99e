package config_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/gatewayq/gatewayq/config"
)

// A binary loads its file (here none) and the environment, then validates
// for what it does: the enqueue CLI needs no TLS files.
func ExampleLoad() {
	cfg, err := config.Load("", []string{ // normally os.Getenv("GATEWAYQ_CONFIG"), os.Environ()
		"GATEWAYQ_PROFILE=test",
		"GATEWAYQ_REDIS_ADDR=redis.internal:6379",
		"GATEWAYQ_GATEWAY_CALL_TIMEOUT=90s",
		"GATEWAYQ_WORKER_QUEUES=realtime:8,bulk:2",
		"HOME=/home/gatewayq", // not GATEWAYQ_*: ignored
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := cfg.ValidateFor(config.RoleEnqueue); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Profile, cfg.Endpoints.Cloud.BaseURL+cfg.Endpoints.Cloud.ReturnsPath)
	fmt.Println(cfg.Gateway.CallTimeout, cfg.Worker.ShutdownTimeout)
	fmt.Println(cfg.Worker.Queues)
	// Output:
	// test https://test5.services.ird.govt.nz:4046/gateway/gws/returns/
	// 1m30s 2m0s
	// bulk:2,realtime:8
}

// Every bad setting is reported at once, each naming its YAML path.
func ExampleConfig_ValidateFor() {
	cfg := config.Default(config.ProfileProduction)
	cfg.TLS.InsecureSkipVerify = true
	cfg.M2M.Lifetime = 0
	cfg.Worker.Queues = config.Queues{"realtime": 6, "nightly": 3}

	err := cfg.ValidateFor(config.RoleEnqueue)
	fmt.Println(err)
	fmt.Println(config.Fields(err))
	// Output:
	// redis.addr: required outside the sandbox profile
	// tls.insecure_skip_verify: refused in the production profile: it would accept any server as IR; set tls.ca_bundle instead
	// m2m.lifetime: must be more than 0 and at most 8h0m0s (IR's maximum); got 0s
	// worker.queues.nightly: unknown queue "nightly" (want realtime, bulk or redrive)
	// [redis.addr tls.insecure_skip_verify m2m.lifetime worker.queues.nightly]
}

// Log the effective configuration without its secrets.
func ExampleConfig_Redacted() {
	cfg, err := config.Load("", []string{
		"GATEWAYQ_REDIS_PASSWORD=hunter2",
		"GATEWAYQ_TOKENS_ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := cfg.Redacted()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("config", "redis.password", r.Redis.Password, "tokens.encryption_key", r.Tokens.EncryptionKey, "oauth.client_secret", r.OAuth.ClientSecret)
	// Output:
	// level=INFO msg=config redis.password=[redacted] tokens.encryption_key=[redacted] oauth.client_secret=""
}

// Other packages hold their own key files to the same rule.
func ExampleCheckKeyFile() {
	dir, err := os.MkdirTemp("", "gatewayq-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := dir + "/jwt.key"
	if err := os.WriteFile(path, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(config.CheckKeyFile("m2m.signing_key", path) == nil)
	if err := os.Chmod(path, 0o644); err != nil {
		fmt.Println(err)
		return
	}
	err = config.CheckKeyFile("m2m.signing_key", path)
	fmt.Println(errors.Is(err, config.ErrKeyFileMode), config.Fields(err))
	// Output:
	// true
	// true [m2m.signing_key]
}
