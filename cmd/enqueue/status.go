package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/tasks"
)

const statusHelp = `Shows a task's state (pending, active, scheduled, retry, archived,
completed), its retries and last error, and its result: the outcome the
worker recorded (IR's status code, gateway ID and submission key, or why the
job was parked for an operator). Without --queue every queue is searched.
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

	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return a.fail(err)
		}
		info, err := insp.GetTaskInfo(tasks.QueueName(s.prefix, q), id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return a.fail(fmt.Errorf("looking up task %s on queue %s (Redis at %s): %w", id, q, s.cfg.Redis.Addr, err))
		}
		a.printTask(info)
		return exitOK
	}
	return a.fail(fmt.Errorf("task %s not found on queue %s (finished tasks are kept for worker.result_retention)", id, joinQueues(queues)))
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

func (a *app) printTask(info *asynq.TaskInfo) {
	w := a.stdout
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	when := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	line("task", "%s", info.ID)
	line("queue", "%s", info.Queue)
	line("state", "%s", info.State)
	if j, err := tasks.Decode(info.Payload); err == nil {
		desc := fmt.Sprintf("%s %s on %s", j.Service, j.Operation, j.Endpoint)
		if j.Key != nil {
			desc += ", return " + j.Key.String()
		}
		line("job", "%s", desc)
		if j.Batch != "" {
			line("batch", "%s", j.Batch)
		}
		if j.Ref != "" {
			line("ref", "%s", j.Ref)
		}
	}
	line("retried", "%d of %d", info.Retried, info.MaxRetry)
	if info.LastErr != "" {
		line("last error", "%s", info.LastErr)
	}
	if !info.LastFailedAt.IsZero() {
		line("last failed", "%s", when(info.LastFailedAt))
	}
	if !info.NextProcessAt.IsZero() && info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived {
		line("next run", "%s", when(info.NextProcessAt))
	}
	if !info.CompletedAt.IsZero() {
		line("completed", "%s", when(info.CompletedAt))
	}
	if info.IsOrphaned {
		line("orphaned", "yes: its worker stopped renewing its lease; a running worker will recover it")
	}
	if len(info.Result) == 0 {
		return
	}
	// The handler's result is a tasks.Outcome in JSON.
	var out bytes.Buffer
	if err := json.Indent(&out, info.Result, "  ", "  "); err != nil {
		fmt.Fprintf(w, "result:\n  %q\n", info.Result)
		return
	}
	fmt.Fprintf(w, "result:\n  %s\n", out.Bytes())
}
