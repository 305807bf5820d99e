package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/ledger"
	"github.com/gatewayq/gatewayq/tasks"
	"github.com/gatewayq/gatewayq/worker"
)

const statusHelp = `Shows a task's state (pending, active, scheduled, retry, archived,
completed), its retries and last error, and its result: the outcome the
worker recorded (IR's status code, gateway ID and submission key, or why the
job was parked for an operator). For a File, it also shows the return's
entry in the filing ledger, which outlives the task. Without --queue every
queue is searched.
`

func (a *app) status(ctx context.Context, g *globals, args []string) int {
	fs := a.newFlagSet(g, "status", "status TASK_ID [--queue Q]", statusHelp)
	queue := fs.String("queue", "", "`queue` the task is on (default: search realtime, bulk and redrive)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "enqueue status: want one TASK_ID")
		fs.Usage()
		return exitError
	}
	id := pos[0]
	queues := tasks.Queues
	if *queue != "" {
		if err := tasks.CheckQueue(*queue); err != nil {
			return a.fail(err)
		}
		queues = []string{*queue}
	}
	s, err := a.connect(g)
	if err != nil {
		return a.fail(err)
	}
	insp := asynq.NewInspector(s.redis)
	defer insp.Close()
	rdb := worker.NewRedis(s.cfg.Redis)
	defer rdb.Close()

	finder := jobstatus.New(insp, jobstatus.Options{QueuePrefix: s.prefix, Ledger: ledger.New(rdb, s.cfg.Redis.KeyPrefix)})
	st, err := finder.Find(ctx, id, queues...)
	if errors.Is(err, jobstatus.ErrNotFound) {
		return a.fail(fmt.Errorf("task %s not found on queue %s (finished tasks are kept for worker.result_retention)", id, joinQueues(queues)))
	}
	if err != nil {
		return a.fail(fmt.Errorf("%w (Redis at %s)", err, s.cfg.Redis.Addr))
	}
	a.printStatus(st)
	return exitOK
}

func joinQueues(qs []string) string {
	var b bytes.Buffer
	for i, q := range qs {
		switch {
		case i == 0:
		case i == len(qs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(q)
	}
	return b.String()
}

func (a *app) printStatus(st *jobstatus.Status) {
	w := a.stdout
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	when := func(t *time.Time) string { return t.UTC().Format(time.RFC3339) }

	line("task", "%s", st.ID)
	line("queue", "%s", st.TaskQueue)
	line("state", "%s", st.State)
	if j := st.Job; j != nil {
		desc := fmt.Sprintf("%s %s on %s", j.Service, j.Operation, j.Endpoint)
		if j.Key != "" {
			desc += ", return " + j.Key
		}
		line("job", "%s", desc)
		if j.Batch != "" {
			line("batch", "%s", j.Batch)
		}
		if j.Ref != "" {
			line("ref", "%s", j.Ref)
		}
	}
	line("retried", "%d of %d", st.Retried, st.MaxRetry)
	if st.LastError != "" {
		line("last error", "%s", st.LastError)
	}
	if st.LastFailedAt != nil {
		line("last failed", "%s", when(st.LastFailedAt))
	}
	if st.NextRunAt != nil {
		line("next run", "%s", when(st.NextRunAt))
	}
	if st.CompletedAt != nil {
		line("completed", "%s", when(st.CompletedAt))
	}
	if st.Orphaned {
		line("orphaned", "yes: its worker stopped renewing its lease; a running worker will recover it")
	}
	if l := st.Ledger; l != nil {
		desc := l.State
		switch {
		case l.GatewayID != "" || l.SubmissionKey != "":
			desc += fmt.Sprintf(" (gateway ID %s, submission key %s)", l.GatewayID, l.SubmissionKey)
		case l.Message != "":
			desc += " (" + l.Message + ")"
		case l.Why != "":
			desc += " (" + l.Why + ")"
		}
		line("ledger", "%s", desc)
	}
	if len(st.Result) == 0 {
		return
	}
	// The handler's result is a tasks.Outcome in JSON.
	var out bytes.Buffer
	if err := json.Indent(&out, st.Result, "  ", "  "); err != nil {
		fmt.Fprintf(w, "result:\n  %q\n", st.Result)
		return
	}
	fmt.Fprintf(w, "result:\n  %s\n", out.Bytes())
}
