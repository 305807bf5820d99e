package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

const envPrefix = "GATEWAYQ_"

// envNotSettings are GATEWAYQ_* variables that are not settings of Config
// but are read elsewhere, so they must not be reported as typos. Keep this
// list short: every entry is a name a typo can hide behind.
var envNotSettings = []string{
	"GATEWAYQ_CONFIG",     // path of the config file, read by the binaries
	"GATEWAYQ_NO_XMLLINT", // tests: skip cross-checks with xmllint
	"GATEWAYQ_NO_DOCKER",  // tests: no docker client to check docker-compose.yml
	// cmd/sandbox: the admin endpoint's bearer token, kept out of argv.
	"GATEWAYQ_SANDBOX_ADMIN_TOKEN",
}

// EnvName returns the environment variable for the setting at a YAML path
// such as "tls.client_key" (GATEWAYQ_TLS_CLIENT_KEY), or "" if there is no
// such setting.
func EnvName(yamlPath string) string {
	var name string
	walkLeaves(reflect.ValueOf(Config{}), nil, func(l leaf) {
		if l.yamlPath() == yamlPath {
			name = l.envName()
		}
	})
	return name
}

// lookupEnv returns the last value of name in environ, as the shell and
// os/exec treat duplicates.
func lookupEnv(environ []string, name string) (string, bool) {
	val, found := "", false
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == name {
			val, found = v, true
		}
	}
	return val, found
}

// applyEnv sets every setting whose GATEWAYQ_* variable is in environ, and
// reports unparsable values and variables that name no setting. An empty
// value counts as unset: compose files and shells turn an unset
// ${VAR} into an empty one, and that must not wipe a value from the file.
func applyEnv(c *Config, environ []string) error {
	var es errs
	known := map[string]leaf{}
	walkLeaves(reflect.ValueOf(c).Elem(), nil, func(l leaf) { known[l.envName()] = l })

	seen := map[string]bool{}
	// The last occurrence of a variable wins, so walk backwards and skip
	// names already handled.
	for i := len(environ) - 1; i >= 0; i-- {
		name, val, ok := strings.Cut(environ[i], "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || seen[name] {
			continue
		}
		seen[name] = true
		l, isSetting := known[name]
		switch {
		case !isSetting && slices.Contains(envNotSettings, name):
			continue
		case !isSetting:
			msg := ErrUnknownEnv
			// Compare without the shared prefix, or every long name looks
			// close to every other.
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, strings.TrimPrefix(k, envPrefix))
			}
			slices.Sort(names)
			if s := suggest(strings.TrimPrefix(name, envPrefix), names); s != "" {
				es.add(name, fmt.Errorf("%w (did you mean %s%s?)", msg, envPrefix, s))
			} else {
				es.add(name, msg)
			}
			continue
		case val == "":
			continue
		}
		if err := setFromString(l.value, val); err != nil {
			es.add(name, err)
		}
	}
	// Report in a stable order whatever the order of environ.
	slices.SortFunc(es, func(a, b error) int {
		return strings.Compare(a.(*FieldError).Field, b.(*FieldError).Field)
	})
	return es.join()
}

var durationType = reflect.TypeFor[time.Duration]()

// setFromString parses s into v by v's type. Errors never include s for
// string settings (they cannot fail) and quote s otherwise: no secret is a
// number, a duration or a boolean.
func setFromString(v reflect.Value, s string) error {
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
			return u.UnmarshalText([]byte(s))
		}
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 90s, 5m, 1h30m): %q", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean (true or false): %q", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.ParseInt(s, 10, 0)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("integer out of range: %q", s)
			}
			return fmt.Errorf("not an integer: %q", s)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("not a number: %q", s)
		}
		v.SetFloat(f)
	default:
		// Reached only if a field of a new type is added to Config; the
		// tests set every variable, so this cannot ship unnoticed.
		return fmt.Errorf("settings of type %s cannot be set from the environment", v.Type())
	}
	return nil
}
