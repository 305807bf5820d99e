package ledger_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/ledger"
)

// A File is marked sending right before it goes out; a second attempt finds
// the outcome unknown and must reconcile with IR instead of sending.
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	l := ledger.New(rdb, "example:ledger:")
	key := "GST/123039858/GST/2017-07-31"
	defer rdb.Del(ctx, append(l.StatsKeys(), l.RedisKey(key))...)

	if _, err := l.BeginSend(ctx, key, "task-1", "sha256-of-body"); err != nil {
		fmt.Println(err)
		return
	}
	// ... the call timed out after the request was written ...
	_, _ = l.Uncertain(ctx, key, "task-1", "deadline exceeded after the request was sent")

	e, err := l.BeginSend(ctx, key, "task-1", "sha256-of-body")
	fmt.Println(errors.Is(err, ledger.ErrMustReconcile), e.State)

	// Reconciliation (RetrieveStatus, RetrieveReturn) found it filed.
	e, _ = l.Filed(ctx, key, "task-1", ledger.Filing{SubmissionKey: "235067864", Reconciled: true})
	fmt.Println(e.State, e.SubmissionKey)
	// Output:
	// true uncertain
	// filed 235067864
}

// Stats counts entries by state from a hash the transitions keep, without
// scanning the ledger.
func ExampleLedger_Stats() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	l := ledger.New(rdb, "example:ledger-stats:")
	keys := append(l.StatsKeys(), l.RedisKey("GST/1/GST/2026-09-30"), l.RedisKey("GST/2/GST/2026-09-30"))
	rdb.Del(ctx, keys...)
	defer rdb.Del(ctx, keys...)

	_, _ = l.BeginSend(ctx, "GST/1/GST/2026-09-30", "task-1", "h1")
	_, _ = l.Filed(ctx, "GST/1/GST/2026-09-30", "task-1", ledger.Filing{SubmissionKey: "235067864"})
	_, _ = l.BeginSend(ctx, "GST/2/GST/2026-09-30", "task-2", "h2")

	s, err := l.Stats(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("filed", s.Entries[ledger.StateFiled], "sending", s.Entries[ledger.StateSending])
	fmt.Println("new sends", s.Transitions[ledger.Transition{To: ledger.StateSending}])
	// Output:
	// filed 1 sending 1
	// new sends 2
}
