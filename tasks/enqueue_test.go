package tasks

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

// TestEnqueueMarksQueued: a new File shows in the ledger as queued; a
// return already filed keeps its filed entry when enqueued again.
func TestEnqueueMarksQueued(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ctx := context.Background()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	l := ledger.New(r.Client, r.Prefix)
	enq := NewEnqueuer(client, EnqueueOptions{QueuePrefix: r.Prefix, Ledger: l})

	j := gstJob(t)
	res, err := enq.Enqueue(ctx, j, QueueBulk)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Get(ctx, LedgerKey(j))
	if err != nil || e.State != ledger.StateQueued || e.TaskID != res.ID {
		t.Fatalf("after enqueue: %+v %v, want queued by %s", e, err, res.ID)
	}

	// Sent and filed, then enqueued again (a re-run of the night's file).
	if _, err := l.BeginSend(ctx, LedgerKey(j), res.ID, BodyHash(j)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Filed(ctx, LedgerKey(j), res.ID, ledger.Filing{GatewayID: "G", SubmissionKey: "S"}); err != nil {
		t.Fatal(err)
	}
	other := NewEnqueuer(client, EnqueueOptions{QueuePrefix: r.Prefix + "again:", Ledger: l})
	if _, err := other.Enqueue(ctx, gstJob(t), QueueBulk); err != nil {
		t.Fatal(err)
	}
	if e, _ := l.Get(ctx, LedgerKey(j)); e.State != ledger.StateFiled || e.SubmissionKey != "S" {
		t.Fatalf("a filed return re-enqueued: %+v, want it still filed", e)
	}
}
