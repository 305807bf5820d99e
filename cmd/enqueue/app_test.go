package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// harness runs the CLI in process against the test's queues.
type harness struct {
	t     *testing.T
	r     *redistest.Redis
	insp  *asynq.Inspector
	stdin string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	r := redistest.New(t)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { _ = insp.Close() })
	return &harness{t: t, r: r, insp: insp}
}

// run runs the CLI with args, adding --redis and --queue-prefix after
// the command (the global flags are accepted there too), and the test's
// key prefix for gatewayq's own keys (batches, failures, the ledger).
func (h *harness) run(args ...string) result {
	h.t.Helper()
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append([]string{args[0], "--redis", h.r.Addr, "--queue-prefix", h.r.Prefix}, args[1:]...)
	}
	return h.runRaw([]string{"GATEWAYQ_REDIS_KEY_PREFIX=" + h.r.Prefix}, args...)
}

func (h *harness) runRaw(environ []string, args ...string) result {
	h.t.Helper()
	var out, errOut bytes.Buffer
	a := &app{
		stdin:   strings.NewReader(h.stdin),
		stdout:  &out,
		stderr:  &errOut,
		environ: environ, // not os.Environ(): the test's own variables must not leak in
		now:     func() time.Time { return time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC) },
	}
	code := a.Run(h.t.Context(), args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func (h *harness) queue(q string) string { return h.r.Prefix + q }

func (h *harness) pending(q string) int {
	h.t.Helper()
	qs, err := h.insp.Queues()
	if err != nil {
		h.t.Fatal(err)
	}
	found := false
	for _, name := range qs {
		found = found || name == h.queue(q)
	}
	if !found {
		return 0
	}
	qi, err := h.insp.GetQueueInfo(h.queue(q))
	if err != nil {
		h.t.Fatal(err)
	}
	return qi.Pending
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout does not contain %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
		}
	}
}

// --- fixtures: IR's sample GST return (demo/templates) with varied IRD numbers.

var (
	tmplOnce sync.Once
	tmpl     *template.Template
	tmplErr  error
)

func gstBody(t testing.TB, n int) string {
	t.Helper()
	tmplOnce.Do(func() { tmpl, tmplErr = template.ParseFiles("../../demo/templates/gst-file.xml") })
	if tmplErr != nil {
		t.Fatal(tmplErr)
	}
	var b bytes.Buffer
	err := tmpl.ExecuteTemplate(&b, "gst-file.xml", map[string]string{
		"Identifier": fmt.Sprintf("%09d", 123_000_000+n), "PeriodEndDate": "2026-09-30",
		"TotalSales": "10000.00", "TotalExpenses": "2300.00", "TotalGST": "1004.35",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func gstJob(t testing.TB, n int) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"service": "returns", "operation": "File",
		"auth": map[string]any{"mode": "oauth", "token_set": "ts-1"},
		"body": gstBody(t, n), "ref": fmt.Sprintf("gst-%d", n),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func badJob(t testing.TB, n int) string {
	return strings.Replace(gstJob(t, n), "2026-09-30", "1800-01-02", 1)
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func taskID(t *testing.T, line string) string {
	t.Helper()
	l := jobfile.ParseLine(1, []byte(line))
	if l.Err != nil {
		t.Fatal(l.Err)
	}
	return l.Job.ID()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"no command", nil, exitError, []string{"Commands:", "submit", "bulk", "status", "Exit codes"}},
		{"help flag", []string{"-h"}, exitOK, []string{"Usage:"}},
		{"unknown command", []string{"frobnicate"}, exitError, []string{`unknown command "frobnicate"`}},
		{"unknown global flag", []string{"--verbose", "bulk"}, exitError, []string{"flag provided but not defined"}},
		{"submit help", []string{"submit", "-h"}, exitOK, []string{"Usage: enqueue submit", "-body-file", "-token-set", "-redis"}},
		{"bulk help", []string{"bulk", "--help"}, exitOK, []string{"Usage: enqueue bulk", "-dry-run", "-batch", "-from-line"}},
		{"status help", []string{"status", "-h"}, exitOK, []string{"Usage: enqueue status", "-queue"}},
		{"bulk without a file", []string{"bulk"}, exitError, []string{"want one FILE"}},
		{"bulk with two files", []string{"bulk", "a", "b"}, exitError, []string{"want one FILE"}},
		{"status without an ID", []string{"status"}, exitError, []string{"want one TASK_ID"}},
		{"submit with nothing", []string{"submit"}, exitError, []string{"give --file"}},
		{"unknown queue", []string{"bulk", "x.jsonl", "--queue", "nightly"}, exitError, []string{`unknown queue "nightly"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &harness{t: t, r: h.r, insp: h.insp}
			h.runRaw(nil, tc.args...).want(t, tc.code, nil, tc.stderr)
		})
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()

	t.Run("from a file, then the same job again is a duplicate", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		job := gstJob(t, 1)
		path := write(t, "job.json", job)
		id := taskID(t, job)
		h.run("submit", "--file", path).want(t, exitOK, []string{"task:      " + id, "queue:     " + h.queue("realtime"), "duplicate: no"}, nil)
		h.run("submit", "--file", path).want(t, exitOK, []string{id, "duplicate: yes"}, nil)
		if got := h.pending("realtime"); got != 1 {
			t.Errorf("%d pending on realtime, want 1", got)
		}
	})

	t.Run("from flags, on another queue, with ref and batch", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		body := write(t, "gst.xml", gstBody(t, 2))
		res := h.run("submit", "--service", "returns", "--operation", "File", "--endpoint", "cloud", "--auth", "oauth",
			"--token-set", "ts-7", "--body-file", body, "--queue", "redrive", "--ref", "my-ref", "--batch", "b-manual")
		res.want(t, exitOK, []string{"queue:     " + h.queue("redrive"), "duplicate: no"}, nil)
		id := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(res.stdout, "\n", 2)[0], "task:"))
		info, err := h.insp.GetTaskInfo(h.queue("redrive"), id)
		if err != nil {
			t.Fatal(err)
		}
		j, err := tasks.Decode(info.Payload)
		if err != nil || j.Ref != "my-ref" || j.Batch != "b-manual" || j.Auth.TokenSet != "ts-7" {
			t.Errorf("stored job %+v, err %v", j, err)
		}
	})

	t.Run("from standard input", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.stdin = gstJob(t, 3)
		h.run("submit", "--file", "-").want(t, exitOK, []string{"duplicate: no"}, nil)
	})

	t.Run("invalid job lists its field errors", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.run("submit", "--file", write(t, "bad.json", badJob(t, 4))).want(t, exitError, nil, []string{"invalid job", "body: payload fails IR's XSD"})
		h.run("submit", "--file", write(t, "bad.json", `{"service":"returns","operation":"File","auth":{"mode":"m2m"}}`)).
			want(t, exitError, nil, []string{"auth.mode:", "body: missing"})
		h.run("submit", "--file", write(t, "bad.json", `{"service":"returns","oepration":"File"}`)).want(t, exitError, nil, []string{"oepration"})
		if got := h.pending("realtime"); got != 0 {
			t.Errorf("%d pending after invalid jobs", got)
		}
	})

	t.Run("file and fields together are refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.run("submit", "--file", "x.json", "--service", "returns").want(t, exitError, nil, []string{"not both"})
		h.run("submit", "--service", "returns", "--operation", "File").want(t, exitError, nil, []string{"--body-file is required"})
		h.run("submit", "--file", filepath.Join(t.TempDir(), "missing.json")).want(t, exitError, nil, []string{"no such file"})
	})

	t.Run("unreachable Redis", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.runRaw(nil, "--redis", "127.0.0.1:1", "submit", "--file", write(t, "job.json", gstJob(t, 5))).
			want(t, exitError, nil, []string{"127.0.0.1:1"})
	})
}

func TestBulk(t *testing.T) {
	t.Parallel()

	t.Run("good file, then re-run is all duplicates", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		var lines []string
		for i := range 25 {
			lines = append(lines, gstJob(t, i))
		}
		path := write(t, "jobs.jsonl", "# tonight\n"+strings.Join(lines, "\n")+"\n")
		h.run("bulk", path, "--batch", "b-night-1").want(t, exitOK,
			[]string{"batch:      b-night-1", "lines:      25", "enqueued:   25", "duplicates: 0", "rejected:   0", "jobs/s"},
			[]string{"progress: 100% 25 lines, 25 enqueued"})
		if got := h.pending("bulk"); got != 25 {
			t.Errorf("%d pending, want 25", got)
		}
		info, err := h.insp.GetTaskInfo(h.queue("bulk"), taskID(t, lines[0]))
		if err != nil {
			t.Fatal(err)
		}
		if j, _ := tasks.Decode(info.Payload); j == nil || j.Batch != "b-night-1" {
			t.Errorf("task's job %+v: want batch b-night-1 stamped", j)
		}
		h.run("bulk", path).want(t, exitOK, []string{"batch:      b-20261125T023000Z-", "enqueued:   0", "duplicates: 25"}, nil)
		if got := h.pending("bulk"); got != 25 {
			t.Errorf("%d pending after the re-run, want 25", got)
		}
	})

	t.Run("bad lines: exit 2, good lines enqueued, rejected lines listed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		content := strings.Join([]string{gstJob(t, 1), badJob(t, 2), "", "{not json", gstJob(t, 3)}, "\r\n")
		h.run("bulk", write(t, "jobs.jsonl", content), "--queue", "realtime").want(t, exitRejected,
			[]string{"lines:      4", "enqueued:   2", "rejected:   2", "rejected lines (first 2 of 2):", "  line 2: body: payload fails IR's XSD", "  line 4: invalid job: malformed JSON"}, nil)
		if got := h.pending("realtime"); got != 2 {
			t.Errorf("%d pending on realtime, want 2", got)
		}
	})

	t.Run("dry run enqueues nothing", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		path := write(t, "jobs.jsonl", gstJob(t, 1)+"\n"+badJob(t, 2)+"\n")
		h.run("bulk", "--dry-run", path).want(t, exitRejected, []string{"valid:      1", "rejected:   1", "dry run: nothing was enqueued", "line 2:"}, nil)
		if got := h.pending("bulk"); got != 0 {
			t.Errorf("dry run left %d pending", got)
		}
	})

	t.Run("standard input, show limit and from-line", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.stdin = strings.Join([]string{badJob(t, 1), badJob(t, 2), badJob(t, 3), gstJob(t, 4), badJob(t, 5)}, "\n")
		res := h.run("bulk", "-", "--show", "1", "--from-line", "2")
		res.want(t, exitRejected, []string{"lines:      4", "enqueued:   1", "rejected:   3", "rejected lines (first 1 of 3):", "  line 2:"}, nil)
		if strings.Contains(res.stdout, "line 3:") || strings.Contains(res.stdout, "line 1:") {
			t.Errorf("shows more than asked, or a skipped line:\n%s", res.stdout)
		}
	})

	t.Run("unreachable Redis: exit 1 and where to resume", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		path := write(t, "jobs.jsonl", gstJob(t, 1)+"\n"+gstJob(t, 2)+"\n")
		h.runRaw(nil, "bulk", path, "--redis", "127.0.0.1:1", "--batch", "b-x").want(t, exitError,
			[]string{"enqueued:   0"},
			[]string{"127.0.0.1:1", "resume from line 1", "deterministic", "to resume: enqueue bulk " + path + " --batch b-x --from-line 1"})
	})

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.run("bulk", filepath.Join(t.TempDir(), "none.jsonl")).want(t, exitError, nil, []string{"no such file"})
	})
}

func TestStatus(t *testing.T) {
	t.Parallel()

	t.Run("pending task", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		job := gstJob(t, 1)
		h.run("submit", "--file", write(t, "job.json", job), "--batch", "b-s").want(t, exitOK, nil, nil)
		id := taskID(t, job)
		h.run("status", id).want(t, exitOK, []string{
			"task:        " + id, "queue:       " + h.queue("realtime"), "state:       pending",
			"job:         returns File on cloud, return GST/123000001/GST/2026-09-30", "batch:       b-s", "ref:         gst-1", "retried:     0 of 25",
		}, nil)
		h.run("status", id, "--queue", "bulk").want(t, exitError, nil, []string{"not found on queue bulk"})
		h.run("status", "no-such-task").want(t, exitError, nil, []string{"not found on queue realtime, bulk or redrive"})
	})

	t.Run("completed task shows the worker's outcome", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		job := gstJob(t, 2)
		h.run("submit", "--file", write(t, "job.json", job), "--queue", "bulk").want(t, exitOK, nil, nil)
		id := taskID(t, job)

		// A worker stand-in that records an outcome as tasks.Handler does.
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: h.r.Addr}, asynq.Config{
			Concurrency: 1, Queues: map[string]int{h.queue("bulk"): 1}, LogLevel: asynq.FatalLevel,
		})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeGatewayCall, func(ctx context.Context, task *asynq.Task) error {
			b, _ := json.Marshal(tasks.Outcome{Class: "ok", StatusCode: 0, GatewayID: "GW-123", SubmissionKey: "SK-456", FinishedAt: time.Now().UTC()})
			_, err := task.ResultWriter().Write(b)
			return err
		})
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		for {
			info, err := h.insp.GetTaskInfo(h.queue("bulk"), id)
			if err == nil && info.State == asynq.TaskStateCompleted {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("task never completed: %v %v", info, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		h.run("status", id).want(t, exitOK, []string{"state:       completed", "completed:", `"gateway_id": "GW-123"`, `"submission_key": "SK-456"`}, nil)
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("redis address from the config file and GATEWAYQ_CONFIG", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		cfg := write(t, "gatewayq.yaml", "profile: sandbox\nredis:\n  addr: "+h.r.Addr+"\n")
		job := write(t, "job.json", gstJob(t, 1))
		h.runRaw(nil, "--config", cfg, "--queue-prefix", h.r.Prefix, "submit", "--file", job).want(t, exitOK, []string{"duplicate: no"}, nil)
		h.runRaw([]string{"GATEWAYQ_CONFIG=" + cfg}, "submit", "--file", job, "--queue-prefix", h.r.Prefix).want(t, exitOK, []string{"duplicate: yes"}, nil)
	})

	t.Run("bad config names the field", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		cfg := write(t, "gatewayq.yaml", "redis:\n  adr: localhost:6379\n")
		h.runRaw(nil, "--config", cfg, "status", "x").want(t, exitError, nil, []string{"redis.adr"})
		h.runRaw([]string{"GATEWAYQ_REDIS_DB=-1"}, "--redis", h.r.Addr, "status", "x").want(t, exitError, nil, []string{"redis.db"})
	})

	t.Run("no Redis address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.runRaw(nil, "status", "x").want(t, exitError, nil, []string{"no Redis address", "--redis"})
	})
}

func TestProgressPrinter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		terminal bool
		p        jobfile.Progress
		want     string
	}{
		{"plain, size known", false, jobfile.Progress{Lines: 10, Enqueued: 8, Duplicates: 1, Rejected: 1, BytesRead: 50, TotalBytes: 200, Elapsed: 2 * time.Second},
			"progress:  25% 10 lines, 8 enqueued, 1 duplicates, 1 rejected, 5/s\n"},
		{"plain, size unknown", false, jobfile.Progress{Lines: 3, Enqueued: 3},
			"progress: 3 lines, 3 enqueued, 0 duplicates, 0 rejected\n"},
		{"terminal bar", true, jobfile.Progress{Lines: 4, Enqueued: 4, BytesRead: 100, TotalBytes: 200, Elapsed: time.Second},
			"\r[###############...............]  50% 4 lines, 4 enqueued, 0 duplicates, 0 rejected, 4/s\033[K\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			p := newProgressPrinter(&b, tc.terminal)
			p.print(tc.p)
			p.finish()
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}
