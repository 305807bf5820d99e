package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Environ renders c as GATEWAYQ_* variables, the way an operator would
// configure a container: Load("", c.Environ()) gives back c. Settings that
// are empty strings are left out (an empty variable counts as unset).
// The result holds secrets in the clear: hand it to a child process, never
// to a log.
func (c *Config) Environ() []string {
	var out []string
	walkLeaves(reflect.ValueOf(c).Elem(), nil, func(l leaf) {
		s := formatLeaf(l.value)
		if s == "" {
			return
		}
		out = append(out, l.envName()+"="+s)
	})
	return out
}

func formatLeaf(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err == nil {
			return string(b)
		}
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Type() != durationType && v.Kind() != reflect.String {
		return s.String()
	}
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.String:
		return v.String()
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case v.Kind() == reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	case v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}
