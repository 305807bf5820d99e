package tasks

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

// ledgerEnqueuer is an Enqueuer on the test's Redis that marks new Files
// queued in the ledger l, with the asynq client it writes through.
func ledgerEnqueuer(t *testing.T) (*redistest.Redis, *asynq.Client, *ledger.Ledger, *Enqueuer) {
	t.Helper()
	r := redistest.New(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	l := ledger.New(r.Client, r.Prefix)
	return r, client, l, NewEnqueuer(client, EnqueueOptions{QueuePrefix: r.Prefix, Ledger: l})
}

// TestEnqueueMarksQueued: a new File shows in the ledger as queued; a
// return already filed keeps its filed entry when enqueued again.
func TestEnqueueMarksQueued(t *testing.T) {
	t.Parallel()
	r, client, l, enq := ledgerEnqueuer(t)
	ctx := context.Background()

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

// TestPrepareFreezesTheJob: a prepared job is enqueued as it was when it
// was validated, whatever its caller does to the Job afterwards, and a
// prepared duplicate is reported as one.
func TestPrepareFreezesTheJob(t *testing.T) {
	t.Parallel()
	r, _, l, enq := ledgerEnqueuer(t)
	ctx := context.Background()

	j := gstJob(t)
	p, err := Prepare(j)
	if err != nil {
		t.Fatal(err)
	}
	if j.Key == nil || p.ID() != j.ID() {
		t.Fatalf("Prepare did not normalise the job in place: key %v, ID %s vs %s", j.Key, p.ID(), j.ID())
	}
	want, wantKey := j.Body, LedgerKey(j)
	j.Body = "<not-what-was-validated/>"
	j.Key.Identifier = "999999999"
	res, err := enq.EnqueuePrepared(ctx, p, QueueRealtime)
	if err != nil || res.Duplicate || res.ID != p.ID() {
		t.Fatalf("EnqueuePrepared: %+v, %v", res, err)
	}
	info, err := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr}).GetTaskInfo(QueueName(r.Prefix, QueueRealtime), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(info.Payload)
	if err != nil || got.Body != want {
		t.Fatalf("enqueued body changed after Prepare (%v)", err)
	}
	if got.Key == nil || LedgerKey(got) != wantKey {
		t.Fatalf("enqueued key changed after Prepare: %v", got.Key)
	}
	if e, err := l.Get(ctx, wantKey); err != nil || e.State != ledger.StateQueued || e.TaskID != p.ID() {
		t.Fatalf("ledger mark under the prepared key: %+v, %v", e, err)
	}
	if res, err := enq.EnqueuePrepared(ctx, p, QueueRealtime); err != nil || !res.Duplicate {
		t.Fatalf("second EnqueuePrepared: %+v, %v; want a duplicate", res, err)
	}
	if _, err := enq.EnqueuePrepared(ctx, p, "nightly"); !errors.Is(err, ErrInvalidJob) {
		t.Fatalf("unknown queue: %v", err)
	}
	if _, err := Prepare(&Job{Service: "returns", Operation: OpFile}); !errors.Is(err, ErrInvalidJob) {
		t.Fatalf("Prepare of an invalid job: %v", err)
	}
}
