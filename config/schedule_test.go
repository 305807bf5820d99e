package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestScheduleValidate(t *testing.T) {
	t.Parallel()
	good := ScheduledBatch{Name: "nightly", Cron: "30 1 * * *", Dir: "/data/in"}
	tests := []struct {
		name   string
		mutate func(s *Schedule)
		fields []string // sorted
		text   []string
	}{
		{name: "good batch", mutate: func(s *Schedule) {
			s.Batches = ScheduledBatches{good, {Name: "weekly.ei", Cron: "@weekly", Timezone: "UTC", Dir: "in", File: "{date}/ei.jsonl", Queue: QueueRedrive}}
		}},
		{name: "bad cron spec", mutate: func(s *Schedule) {
			b := good
			b.Cron = "61 1 * * *"
			s.Batches = ScheduledBatches{b}
		}, fields: []string{"schedule.batches[0].cron"}, text: []string{"not a cron spec"}},
		{name: "never fires", mutate: func(s *Schedule) {
			b := good
			b.Cron = "0 0 30 2 *"
			s.Batches = ScheduledBatches{b}
		}, fields: []string{"schedule.batches[0].cron"}, text: []string{"never fires"}},
		{name: "six fields", mutate: func(s *Schedule) {
			b := good
			b.Cron = "0 30 1 * * *"
			s.Batches = ScheduledBatches{b}
		}, fields: []string{"schedule.batches[0].cron"}},
		{name: "@every and TZ= refused", mutate: func(s *Schedule) {
			a, b := good, good
			a.Cron, b.Name, b.Cron = "@every 1h", "other", "TZ=UTC 0 1 * * *"
			s.Batches = ScheduledBatches{a, b}
		}, fields: []string{"schedule.batches[0].cron", "schedule.batches[1].cron"}, text: []string{"not anchored", "no TZ= prefix"}},
		{name: "missing fields", mutate: func(s *Schedule) { s.Batches = ScheduledBatches{{}} },
			fields: []string{"schedule.batches[0].cron", "schedule.batches[0].dir", "schedule.batches[0].name"}},
		{name: "bad zone, Local, duplicate name, bad queue", mutate: func(s *Schedule) {
			a, b := good, good
			a.Timezone, a.Queue = "Pacific/Atlantis", "nightly"
			b.Timezone = "Local"
			s.Batches = ScheduledBatches{a, b}
		}, fields: []string{"schedule.batches[0].queue", "schedule.batches[0].timezone", "schedule.batches[1].name", "schedule.batches[1].timezone"},
			text: []string{`unknown time zone "Pacific/Atlantis"`, "also the name of schedule.batches[0]"}},
		{name: "bad names and files", mutate: func(s *Schedule) {
			a, b, c, d := good, good, good, good
			a.Name, b.Name, c.Name, d.Name = "has space", "b", "c", "d"
			b.File, c.File, d.File = "{day}.jsonl", "../x-{date}.jsonl", "/abs/{date}.jsonl"
			s.Batches = ScheduledBatches{a, b, c, d}
		}, fields: []string{"schedule.batches[0].name", "schedule.batches[1].file", "schedule.batches[2].file", "schedule.batches[3].file"},
			text: []string{"unknown placeholder {day}"}},
		{name: "durations", mutate: func(s *Schedule) { s.CatchUp, s.Lease, s.History = 0, time.Millisecond, 0 },
			fields: []string{"schedule.catch_up", "schedule.history", "schedule.lease"}},
		{name: "history not past catch_up", mutate: func(s *Schedule) { s.CatchUp, s.History = 48*time.Hour, 24*time.Hour },
			fields: []string{"schedule.history"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default(ProfileSandbox)
			tt.mutate(&c.Schedule)
			err := c.ValidateFor(RoleEnqueue)
			if got := fieldsOf(err); !slices.Equal(got, tt.fields) {
				t.Fatalf("fields = %q, want %q\n%v", got, tt.fields, err)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestScheduleLoad(t *testing.T) {
	t.Parallel()
	want := ScheduledBatches{
		{Name: "nightly-gst", Cron: "30 1 * * *", Dir: "/data/in", File: "gst-{date}.jsonl"},
		{Name: "ei", Cron: "@daily", Timezone: "UTC", Dir: "/data/ei", Queue: "redrive"},
	}

	t.Run("from YAML", func(t *testing.T) {
		t.Parallel()
		yml := "schedule:\n  catch_up: 2h\n  batches:\n" +
			"    - name: nightly-gst\n      cron: \"30 1 * * *\"\n      dir: /data/in\n      file: \"gst-{date}.jsonl\"\n" +
			"    - {name: ei, cron: \"@daily\", timezone: UTC, dir: /data/ei, queue: redrive}\n"
		c, err := Load(writeFile(t, t.TempDir(), "c.yaml", []byte(yml), 0o644), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Schedule.Batches, want) || c.Schedule.CatchUp != 2*time.Hour || c.Schedule.Lease != time.Minute {
			t.Errorf("got %+v", c.Schedule)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parse(out, nil)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("YAML round trip: %v\n%s", err, out)
		}
	})

	t.Run("from the environment as JSON, and back through Environ", func(t *testing.T) {
		t.Parallel()
		c, err := Load("", env(`GATEWAYQ_SCHEDULE_BATCHES=[{"name":"nightly-gst","cron":"30 1 * * *","dir":"/data/in","file":"gst-{date}.jsonl"},{"name":"ei","cron":"@daily","timezone":"UTC","dir":"/data/ei","queue":"redrive"}]`))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Schedule.Batches, want) {
			t.Fatalf("got %+v", c.Schedule.Batches)
		}
		back, err := Load("", c.Environ())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("Environ round trip changed the config:\n got %+v\nwant %+v", back.Schedule, c.Schedule)
		}
		r := c.Redacted()
		r.Schedule.Batches[0].Dir = "/elsewhere"
		if c.Schedule.Batches[0].Dir != "/data/in" {
			t.Error("Redacted shares the batches with the original")
		}
	})

	t.Run("errors name the field", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			yaml, env, field, text string
		}{
			{yaml: "schedule:\n  batches:\n    - name: a\n      crn: \"0 1 * * *\"\n", field: "schedule.batches", text: "[0].crn: unknown key (did you mean cron?)"},
			{yaml: "schedule:\n  batches:\n    name: a\n", field: "schedule.batches", text: "want a list of batches"},
			{yaml: "schedule:\n  batches:\n    - just-a-name\n", field: "schedule.batches", text: "want a mapping"},
			{env: "GATEWAYQ_SCHEDULE_BATCHES={not json", field: "GATEWAYQ_SCHEDULE_BATCHES", text: "not a JSON list"},
			{env: `GATEWAYQ_SCHEDULE_BATCHES="x"`, field: "GATEWAYQ_SCHEDULE_BATCHES", text: "want a JSON list"},
		} {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, t.TempDir(), "c.yaml", []byte(tt.yaml), 0o644)
			}
			var environ []string
			if tt.env != "" {
				environ = env(tt.env)
			}
			_, err := Load(path, environ)
			if got := Fields(err); !slices.Equal(got, []string{tt.field}) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("%q%q: got fields %q, error %v; want %s and %q", tt.yaml, tt.env, got, err, tt.field, tt.text)
			}
			if err != nil && !errors.Is(err, ErrUnknownKey) && strings.Contains(tt.text, "unknown key") {
				t.Errorf("unknown key does not wrap ErrUnknownKey: %v", err)
			}
		}
	})
}

func TestScheduledBatchFile(t *testing.T) {
	t.Parallel()
	b := ScheduledBatch{Name: "gst", Dir: "/in"}
	loc, err := b.Location()
	if err != nil || loc.String() != DefaultScheduleTimezone {
		t.Fatalf("Location = %v, %v", loc, err)
	}
	// 12:30 UTC on 24 November is 01:30 on the 25th in Auckland (NZDT).
	occ := time.Date(2026, 11, 24, 12, 30, 0, 0, time.UTC).In(loc)
	if got := b.Path(occ); got != "/in/gst-2026-11-25.jsonl" {
		t.Errorf("Path = %q", got)
	}
	b.File = "{date}/{name}.jsonl"
	if got := b.Path(occ); got != "/in/2026-11-25/gst.jsonl" {
		t.Errorf("Path = %q", got)
	}
	if b.QueueName() != QueueBulk {
		t.Errorf("QueueName = %q", b.QueueName())
	}
}
