package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/schedule"
	"github.com/gatewayq/gatewayq/tasks"
)

// seedNight enqueues batch b-cli (four returns and a refused line) with
// the CLI, then stands in for the workers: return 4 filed, 2 parked for
// delegation (code 4), 3 rejected as invalid (code 131), 1 still pending.
func seedNight(t *testing.T, h *harness) (lines []string, jobs []*tasks.Job) {
	t.Helper()
	for i := 1; i <= 4; i++ {
		lines = append(lines, gstJob(t, i))
	}
	lines = append(lines, badJob(t, 5))
	h.run("bulk", write(t, "night.jsonl", strings.Join(lines, "\n")), "--batch", "b-cli").
		want(t, exitRejected, []string{"enqueued:   4", "follow it:  enqueue batch status b-cli"}, nil)
	for i, l := range lines[:4] {
		pl := jobfile.ParseLine(i+1, []byte(l))
		if pl.Err != nil {
			t.Fatal(pl.Err)
		}
		pl.Job.Batch = "b-cli"
		jobs = append(jobs, pl.Job)
	}
	ctx := t.Context()
	idx := failures.New(h.r.Client, h.r.Prefix, failures.Options{})
	park := func(j *tasks.Job, at time.Time, class string, code int, msg string) {
		if err := h.insp.ArchiveTask(h.queue("bulk"), j.ID()); err != nil {
			t.Fatal(err)
		}
		info, err := h.insp.GetTaskInfo(h.queue("bulk"), j.ID())
		if err != nil {
			t.Fatal(err)
		}
		f := tasks.Failure{TaskID: j.ID(), Queue: h.queue("bulk"), Class: class, StatusCode: code, Message: msg, Reason: "see IR's message",
			Job: j, Payload: info.Payload, At: at}
		if err := idx.RecordFailure(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	park(jobs[1], time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), "permission", 4, "Unauthorised delegation")
	park(jobs[2], time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC), "invalid", 131, "periodEndDate is not a month end")
	l := ledger.New(h.r.Client, h.r.Prefix)
	key := tasks.LedgerKey(jobs[3])
	if _, err := l.BeginSend(ctx, key, jobs[3].ID(), tasks.BodyHash(jobs[3])); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Filed(ctx, key, jobs[3].ID(), ledger.Filing{GatewayID: "GW-4", SubmissionKey: "SK-4"}); err != nil {
		t.Fatal(err)
	}
	return lines, jobs
}

func TestBatchCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, jobs := seedNight(t, h)

	h.run("batch", "status", "b-cli").want(t, exitOK, []string{
		"batch:      b-cli", "progress:   [######################........] 75.0% (3 of 4 jobs finished)",
		"jobs:       4 (and 1 line refused at enqueue)", "moving:     1 pending, 0 active, 0 scheduled, 0 retry",
		"filed:      1", "rejected:   2", "failed by class:", "      1  invalid", "      1  permission", "see them: enqueue failed --batch b-cli",
	}, nil)

	res := h.run("batch", "status", "b-cli", "--json")
	res.want(t, exitOK, nil, nil)
	var st batch.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.Jobs != 4 || st.Refused != 1 || st.Filed != 1 || st.Rejected != 2 || st.Pending != 1 {
		t.Fatalf("status JSON %s: %+v %v", res.stdout, st, err)
	}

	h.run("batch", "report", "b-cli").want(t, exitOK, []string{
		"line,natural_key,ref,task_id,outcome,class,gateway_id,submission_key,status_code,message\n",
		"1,GST/123000001/GST/2026-09-30,gst-1," + jobs[0].ID() + ",pending,,,,,\n",
		"2,GST/123000002/GST/2026-09-30,gst-2," + jobs[1].ID() + ",rejected,permission,,,4,Unauthorised delegation\n",
		"3,GST/123000003/GST/2026-09-30,gst-3," + jobs[2].ID() + ",rejected,invalid,,,131,periodEndDate is not a month end\n",
		"4,GST/123000004/GST/2026-09-30,gst-4," + jobs[3].ID() + ",filed,,GW-4,SK-4,0,\n",
		`5,,,,refused,,,,,"body: payload fails IR's XSD: schema:`,
	}, nil)

	out := filepath.Join(t.TempDir(), "report.jsonl")
	h.run("batch", "report", "b-cli", "--format", "json", "--out", out).want(t, exitOK, nil, []string{"5 lines written to " + out})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last batch.Line
	if len(rows) != 5 || json.Unmarshal([]byte(rows[3]), &last) != nil || last.Outcome != batch.OutcomeFiled || last.SubmissionKey != "SK-4" {
		t.Fatalf("JSON lines report:\n%s", b)
	}

	h.run("batch", "list").want(t, exitOK, []string{"2026-11-25T02:30:00Z  b-cli"}, nil)
	h.run("batch", "status", "b-none").want(t, exitError, nil, []string{"batch: not found: b-none"})
	h.run("batch", "report", "b-cli", "--format", "xml").want(t, exitError, nil, []string{`unknown --format "xml"`})
	h.run("batch", "status").want(t, exitError, nil, []string{"want one batch ID"})
	h.run("batch", "frobnicate").want(t, exitError, nil, []string{`unknown command "frobnicate"`})
	h.runRaw(nil, "batch").want(t, exitError, nil, []string{"Usage: enqueue batch"})
	h.runRaw(nil, "batch", "-h").want(t, exitOK, []string{"report ID [--format csv|json]"}, nil)
	h.runRaw(nil, "batch", "report", "-h").want(t, exitOK, nil, []string{"Usage: enqueue batch report", "-format", "JSON lines"})
	h.runRaw(nil, "redrive", "-h").want(t, exitOK, nil, []string{"Usage: enqueue redrive", "-dry-run", "-payload", "-who"})
	h.runRaw(nil, "failed", "-h").want(t, exitOK, nil, []string{"Usage: enqueue failed", "-class", "-identifier", "-since"})
}

func TestFailedAndRedrive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, jobs := seedNight(t, h)
	env := []string{"GATEWAYQ_REDIS_KEY_PREFIX=" + h.r.Prefix, "USER=ops-alice"}
	run := func(args ...string) result {
		t.Helper()
		return h.runRaw(env, append(append([]string{}, args[0], "--redis", h.r.Addr, "--queue-prefix", h.r.Prefix), args[1:]...)...)
	}

	t.Run("failed lists with counts per cause", func(t *testing.T) {
		run("failed").want(t, exitOK, []string{"2 failed jobs ((every failure))", "by cause:", "      1  invalid (code 131)", "      1  permission (code 4)",
			"FAILED AT", "2026-11-25T01:00:00Z  bulk", "permission", "b-cli", "GST/123000002/GST/2026-09-30", jobs[1].ID(), "Unauthorised delegation"}, nil)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--class", "permission"}, "1 failed jobs (class=permission)"},
			{[]string{"--code", "131"}, "1 failed jobs (code=131)"},
			{[]string{"--batch", "b-cli", "--queue", "bulk"}, "2 failed jobs (queue=" + h.queue("bulk") + " batch=b-cli)"},
			{[]string{"--queue", "realtime"}, "0 failed jobs"},
			{[]string{"--identifier", "123000003"}, "1 failed jobs (identifier=123000003)"},
			{[]string{"--since", "2026-11-25T01:30:00Z"}, "1 failed jobs (since=2026-11-25T01:30:00Z)"},
			{[]string{"--until", "2026-11-25"}, "0 failed jobs"},
			{[]string{"--since", "1h"}, "1 failed jobs (since=2026-11-25T01:30:00Z)"},
			{[]string{"--task", jobs[2].ID()}, "1 failed jobs (task="},
		} {
			run(append([]string{"failed"}, tc.args...)...).want(t, exitOK, []string{tc.want}, nil)
		}
		res := run("failed", "--code", "4", "--json")
		var rec failures.Record
		if err := json.Unmarshal([]byte(res.stdout), &rec); err != nil || rec.TaskID != jobs[1].ID() || rec.Class != "permission" {
			t.Fatalf("JSON: %s (%v)", res.stdout, err)
		}
		run("failed", "--queue", "nightly").want(t, exitError, nil, []string{`unknown queue "nightly"`})
		run("failed", "--since", "yesterday").want(t, exitError, nil, []string{"--since:", "not an RFC 3339 time"})
	})

	t.Run("redrive: refused without a filter, dry run, then for real", func(t *testing.T) {
		run("redrive").want(t, exitError, nil, []string{"narrow it", "--all"})
		run("redrive", "--class", "permission", "--rate", "0").want(t, exitError, nil, []string{"--rate:"})
		run("redrive", "--dry-run", "--class", "permission").want(t, exitOK, []string{
			"dry run r-20261125T023000Z-", "by ops-alice", "filter:   class=permission", "selected: 1",
			"      1  permission (code 4)", "would redrive  bulk  GST/123000002/GST/2026-09-30", "dry run: nothing was moved"}, nil)
		if got := h.pending("redrive"); got != 0 {
			t.Fatalf("%d pending on redrive after a dry run", got)
		}
		run("redrive", "--class", "permission", "--rate", "600/m", "--who", "ops-bob").want(t, exitOK, []string{
			"re-drive r-", "by ops-bob", "redriven  bulk  GST/123000002/GST/2026-09-30  -> redrive", "      1  redriven"}, nil)
		if got := h.pending("redrive"); got != 1 {
			t.Fatalf("%d pending on redrive, want the re-driven job", got)
		}
		run("failed").want(t, exitOK, []string{"1 failed jobs", "invalid (code 131)"}, nil)
		run("failed", "--all", "--class", "permission").want(t, exitOK, []string{"1 failed jobs", "redriven"}, nil)
		// Status: the re-driven job is pending again.
		run("batch", "status", "b-cli").want(t, exitOK, []string{"moving:     2 pending", "rejected:   1"}, nil)
	})

	t.Run("corrected payload for the invalid job", func(t *testing.T) {
		fixed := strings.Replace(gstJob(t, 3), "2300.00", "2400.00", 1)
		run("redrive", "--code", "4", "--payload", write(t, "fixed.json", fixed)).want(t, exitError, nil, []string{"selects 0"})
		res := run("redrive", "--task", jobs[2].ID(), "--payload", write(t, "fixed.json", fixed))
		res.want(t, exitOK, []string{"replaced", "-> ", "corrected payload"}, nil)
		if got := h.pending("redrive"); got != 2 {
			t.Fatalf("%d pending on redrive, want 2", got)
		}
	})

	t.Run("history", func(t *testing.T) {
		res := run("redrive", "history")
		res.want(t, exitOK, []string{"RUN", "WHO", "ops-alice  yes", "ops-bob    no", "1 would redrive", "1 redriven", "1 replaced", "class=permission"}, nil)
		id := strings.Fields(strings.Split(res.stdout, "\n")[1])[0]
		run("redrive", "history", id).want(t, exitOK, []string{id, "selected: 1"}, nil)
		run("redrive", "history", "r-none").want(t, exitError, nil, []string{"no such run"})
	})
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"10", 10, true}, {"10/s", 10, true}, {"600/m", 10, true}, {" 2.5 / s", 2.5, true},
		{"0", 0, false}, {"-3/s", 0, false}, {"fast", 0, false}, {"5/h", 0, false}, {"", 0, false},
	} {
		got, err := parseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// fixedClock is a schedule.Clock stopped at one moment.
type fixedClock time.Time

func (c fixedClock) Now() time.Time                         { return time.Time(c) }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TestScheduleRuns: a nightly batch ran (its file missing, then present
// for the next night); `schedule runs` lists both, newest first.
func TestScheduleRuns(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	cfg := config.Default(config.ProfileSandbox).Schedule
	cfg.Batches = []config.ScheduledBatch{{Name: "nightly", Cron: "30 1 * * *", Dir: dir}}
	akl, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: h.r.Addr})
	defer client.Close()
	run := func(at time.Time) {
		s, err := schedule.New(schedule.Options{Config: cfg, Redis: h.r.Client, KeyPrefix: h.r.Prefix,
			Enqueuer: tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: h.r.Prefix}), Clock: fixedClock(at),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if runs, err := s.RunDue(t.Context()); err != nil || len(runs) != 1 {
			t.Fatalf("RunDue: %v %v", runs, err)
		}
	}
	run(time.Date(2026, 11, 24, 1, 31, 0, 0, akl))
	if err := os.WriteFile(filepath.Join(dir, "nightly-2026-11-25.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run(time.Date(2026, 11, 25, 1, 31, 0, 0, akl))

	res := h.run("schedule", "runs", "nightly")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "OCCURRENCE") ||
		!strings.Contains(lines[1], "2026-11-25T01:30:00+13:00") || !strings.Contains(lines[1], "done") ||
		!strings.Contains(lines[2], "2026-11-24T01:30:00+13:00") || !strings.Contains(lines[2], "missing") {
		t.Fatalf("code %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := h.run("schedule", "runs", "other"); res.code != exitOK || !strings.Contains(res.stdout, "no runs recorded") {
		t.Fatalf("unknown batch: %d %s%s", res.code, res.stdout, res.stderr)
	}
	if res := h.run("schedule", "list"); res.code != exitError {
		t.Fatalf("unknown subcommand: %d", res.code)
	}
}
