package breaker

import (
	"strings"
	"testing"
	"time"
)

func TestParseMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		key     string
		want    view
		wantErr bool
	}{
		{name: "open", in: "1 1761616800001 15000 a1b2c3 cloud:abc", key: "cloud:abc",
			want: view{state: Open, epoch: 1761616800001, remaining: 15 * time.Second}},
		{name: "closed", in: "0 42 0 a1b2c3 desktop:x", key: "desktop:x", want: view{state: Closed, epoch: 42}},
		{name: "key with spaces", in: "0 42 0 a1b2c3 a key", key: "a key", want: view{state: Closed, epoch: 42}},
		{name: "empty", in: "", wantErr: true},
		{name: "no key", in: "0 42 0 a1b2c3 ", wantErr: true},
		{name: "no origin", in: "0 42 0  k", wantErr: true},
		{name: "half-open is never published", in: "2 42 0 o k", wantErr: true},
		{name: "zero epoch", in: "0 0 0 o k", wantErr: true},
		{name: "negative remaining", in: "1 42 -5 o k", wantErr: true},
		{name: "open without remaining", in: "1 42 0 o k", wantErr: true},
		{name: "absurd remaining", in: "1 42 99999999999999 o k", wantErr: true},
		{name: "not a number", in: "x 42 0 o k", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, origin, v, err := parseMessage(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseMessage(%q) = %q, %+v; want an error", tt.in, key, v)
				}
				return
			}
			if err != nil || key != tt.key || origin != "a1b2c3" || v != tt.want {
				t.Fatalf("parseMessage(%q) = %q, %+v, %v; want %q, %+v", tt.in, key, v, err, tt.key, tt.want)
			}
			if got := formatMessage(key, origin, v); got != tt.in {
				t.Fatalf("formatMessage = %q, want %q", got, tt.in)
			}
		})
	}
}

// FuzzParseMessage: anyone who can PUBLISH on the channel writes these.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"1 1761616800001 15000 a1b2c3 cloud:abc", "0 42 0 o k", "2 1 1 o k", "1 -1 5 o k", " ", "0  0 o k", "1 9223372036854775807 9223372036854775807 o k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, origin, v, err := parseMessage(s)
		if err != nil {
			return
		}
		if key == "" || origin == "" || strings.Contains(origin, " ") || v.epoch <= 0 || v.remaining < 0 || (v.state != Open && v.state != Closed) {
			t.Fatalf("parseMessage(%q) accepted %q, %+v", s, key, v)
		}
		if (v.state == Open) != (v.remaining > 0) {
			t.Fatalf("parseMessage(%q): state %s with remaining %s", s, v.state, v.remaining)
		}
		k2, o2, v2, err := parseMessage(formatMessage(key, origin, v))
		if err != nil || k2 != key || o2 != origin || v2 != v {
			t.Fatalf("round trip of %q: %q, %+v, %v", s, k2, v2, err)
		}
		if !strings.HasSuffix(s, key) {
			t.Fatalf("key %q is not the message's tail", key)
		}
	})
}
