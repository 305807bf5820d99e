package config

import (
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds arbitrary YAML and environment to the loader: it must
// never panic, and whatever it accepts must survive a trip through YAML
// unchanged (so Marshal of a loaded config is a faithful config file).
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example, "")
	f.Add([]byte("profile: test\nworker:\n  queues: {realtime: 1}\n"), "GATEWAYQ_WORKER_CONCURRENCY=3")
	f.Add([]byte("redis:\n  adr: x\n"), "GATEWAYQ_REDIS_ADR=1\nGATEWAYQ_PROFILE=production")
	f.Add([]byte("limits:\n  cloud_rps: &a .nan\n  desktop_rps: *a\n"), "")
	f.Add([]byte("gateway:\n  call_timeout: 60\n"), "GATEWAYQ_GATEWAY_CALL_TIMEOUT=1h")
	f.Add([]byte("- 1\n"), "GATEWAYQ_WORKER_QUEUES=bulk:2,realtime:9")
	f.Add([]byte("log: {level: debug}\n---\n"), "GATEWAYQ_NO_XMLLINT=1")
	f.Add([]byte("worker:\n  queues: \"realtime:3\"\n"), "")

	f.Fuzz(func(t *testing.T, data []byte, environ string) {
		c, err := parse(data, strings.Split(environ, "\n"))
		if err != nil {
			if len(Fields(err)) == 0 && err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		_ = c.Redacted()
		_ = c.ValidateFor(RoleEnqueue)

		if math.IsNaN(c.Limits.CloudRPS) || math.IsNaN(c.Limits.DesktopRPS) {
			return // NaN != NaN; Validate refuses it anyway
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := parse(out, nil)
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}

// FuzzQueuesText checks the GATEWAYQ_WORKER_QUEUES parser: no panics, and
// what it accepts, String writes back in a form it reads the same way.
func FuzzQueuesText(f *testing.F) {
	for _, s := range []string{"realtime:6,bulk:3,redrive:1", "", "bulk", ":1", "a:1,a:2", " x : +3 ", "bulk:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var q Queues
		if err := q.UnmarshalText([]byte(s)); err != nil {
			return
		}
		var back Queues
		if err := back.UnmarshalText([]byte(q.String())); err != nil {
			t.Fatalf("%q -> %q: %v", s, q.String(), err)
		}
		if !reflect.DeepEqual(back, q) {
			t.Fatalf("%q -> %v -> %q -> %v", s, q, q.String(), back)
		}
	})
}
