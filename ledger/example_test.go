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
	defer rdb.Del(ctx, l.RedisKey(key))

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
