package config

import (
	"slices"
	"strings"
	"testing"
)

func TestMonitoringDefaults(t *testing.T) {
	t.Parallel()
	for _, p := range Profiles() {
		m := Default(p).Monitoring
		if m.Enabled || !m.ReadOnly || m.Username != "admin" || m.Password != "" {
			t.Errorf("%s: monitoring defaults = %+v, want off, read-only, user admin, no password", p, m)
		}
	}
}

func TestMonitoringValidate(t *testing.T) {
	t.Parallel()
	const good = "correct-horse-battery"
	tests := []struct {
		name   string
		mutate func(t *testing.T, c *Config, dir string)
		fields []string // for RoleWorker
		// enqueue lists the fields RoleEnqueue reports: a producer sharing
		// the file does not serve the UI, so needs no password.
		enqueue []string
	}{
		{name: "off needs nothing", mutate: func(*testing.T, *Config, string) {}},
		{
			name:   "on without a password is refused",
			mutate: func(_ *testing.T, c *Config, _ string) { c.Monitoring.Enabled = true },
			fields: []string{"monitoring.password"},
		},
		{
			name: "on with a password",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.Monitoring.Enabled, c.Monitoring.Password = true, good
			},
		},
		{
			name: "short password",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.Monitoring.Enabled, c.Monitoring.Password = true, "hunter2"
			},
			fields:  []string{"monitoring.password"},
			enqueue: []string{"monitoring.password"},
		},
		{
			name: "bad username",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.Monitoring.Enabled, c.Monitoring.Password, c.Monitoring.Username = true, good, "ops:team"
			},
			fields:  []string{"monitoring.username"},
			enqueue: []string{"monitoring.username"},
		},
		{
			name: "no username",
			mutate: func(_ *testing.T, c *Config, _ string) {
				c.Monitoring.Enabled, c.Monitoring.Password, c.Monitoring.Username = true, good, ""
			},
			fields:  []string{"monitoring.username"},
			enqueue: []string{"monitoring.username"},
		},
		{
			name: "password file set in code but never read",
			mutate: func(t *testing.T, c *Config, dir string) {
				c.Monitoring.Enabled = true
				c.Monitoring.PasswordFile = writeFile(t, dir, "ui-password", []byte(good), 0o600)
			},
			fields: []string{"monitoring.password_file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, dir := withFiles(t)
			tt.mutate(t, c, dir)
			err := c.Validate()
			if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
				t.Errorf("worker: fields = %q, want %q\n%v", got, tt.fields, err)
			}
			assertNoSecret(t, err, c.Monitoring.Password)
			if got := fieldsOf(c.ValidateFor(RoleEnqueue)); !slices.Equal(got, tt.enqueue) {
				t.Errorf("enqueue: fields = %q, want %q", got, tt.enqueue)
			}
		})
	}
}

func TestMonitoringPasswordFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := writeFile(t, dir, "ui-password", []byte("  correct-horse-battery\n"), 0o600)

	t.Run("read by Load", func(t *testing.T) {
		t.Parallel()
		cfgPath := writeFile(t, dir, "a.yaml", []byte("monitoring:\n  enabled: true\n  password_file: "+pw+"\n"), 0o644)
		c, err := Load(cfgPath, env("GATEWAYQ_MONITORING_READ_ONLY=false"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Monitoring.Password != "correct-horse-battery" || c.Monitoring.ReadOnly {
			t.Fatalf("monitoring = %+v", c.Redacted().Monitoring)
		}
		if err := c.ValidateFor(RoleEnqueue); err != nil {
			t.Fatal(err)
		}
		if r := c.Redacted(); r.Monitoring.Password != RedactedValue {
			t.Errorf("redacted password = %q", r.Monitoring.Password)
		}
	})
	t.Run("both ways is an error", func(t *testing.T) {
		t.Parallel()
		cfgPath := writeFile(t, dir, "b.yaml", []byte("monitoring:\n  password_file: "+pw+"\n"), 0o644)
		_, err := Load(cfgPath, env("GATEWAYQ_MONITORING_PASSWORD=another-long-password"))
		if got := Fields(err); !slices.Equal(got, []string{"monitoring.password"}) {
			t.Fatalf("fields = %q: %v", got, err)
		}
		assertNoSecret(t, err, "another-long-password", "correct-horse-battery")
	})
	t.Run("open file refused", func(t *testing.T) {
		t.Parallel()
		open := writeFile(t, dir, "open-password", []byte("correct-horse-battery"), 0o644)
		cfgPath := writeFile(t, dir, "c.yaml", []byte("monitoring:\n  password_file: "+open+"\n"), 0o644)
		_, err := Load(cfgPath, nil)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err = %v, want a permissions error", err)
		}
	})
}
