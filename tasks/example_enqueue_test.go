package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/tasks"
)

// A service that enqueues directly, without the HTTP ingest API, gets the
// same guarantees: the job is validated before it reaches a queue, and the
// task ID comes from the job, so enqueuing it again (a redelivered event, a
// retry after a timeout) reports a Duplicate instead of queuing it twice.
// The example needs a Redis at REDIS_ADDR (default 127.0.0.1:6379).
func ExampleEnqueuer_Enqueue_duplicate() {
	ctx := context.Background()
	redisOpt := asynq.RedisClientOpt{Addr: redistest.Addr()}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	prefix := fmt.Sprintf("example-tasks-%d:", time.Now().UnixNano()) // redis.queue_prefix; the workers use the same
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	defer insp.DeleteQueue(tasks.QueueName(prefix, tasks.QueueRealtime), true)

	enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: prefix})
	payslipApproved := func() *tasks.Job {
		return &tasks.Job{
			Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
			Auth: tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "acme-user-17"},
			Body: gstPayload, Ref: "payslip-4411",
		}
	}
	for range 2 {
		res, err := enq.Enqueue(ctx, payslipApproved(), tasks.QueueRealtime)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.ID, strings.TrimPrefix(res.Queue, prefix), "duplicate:", res.Duplicate)
	}

	bad := payslipApproved()
	bad.Auth.TokenSet = ""
	_, err := enq.Enqueue(ctx, bad, tasks.QueueRealtime)
	fmt.Println(errors.Is(err, tasks.ErrInvalidJob), err)
	// Output:
	// returns:File:GST/123039858/GST/2026-09-30:2fe39329dfa19ca485f6 realtime duplicate: false
	// returns:File:GST/123039858/GST/2026-09-30:2fe39329dfa19ca485f6 realtime duplicate: true
	// true auth.token_set: missing: an oauth job names the end user's token set (never the token itself)
}
